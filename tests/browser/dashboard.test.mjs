// The dashboard in a real browser (issue 5 item 4, doc/dashboard.md).
//
// Starts three demo apps and bollard (build/bollard, stats-admin on) on free
// loopback ports, sends traffic from simulated users that stick to their
// server (persist header), and drives Debian's headless Chromium through
// playwright-core (never a downloaded browser): every server is shown, the
// numbers move with the traffic, the drain button drains a server (on the
// page and in /api/servers), the page logs no error, and it fits a phone.
// Screenshots go to build/dashboard.png and build/dashboard-phone.png.
// Everything started here is stopped by PID, whatever happens.
//
// Run: node --test tests/browser/dashboard.test.mjs (scripts/browser-test.sh)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BOLLARD = process.env.BOLLARD_BIN || path.join(ROOT, 'build/bollard');
const DEMO = path.join(ROOT, 'build/bollard-demo-app');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const APPS = ['app1', 'app2', 'app3'];

const procs = [];          // every child we started, stopped in after()
let tmp, stats, front, browser, stopTraffic = false, trafficDone;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.once('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

function canConnect(port) {
	return new Promise((resolve) => {
		const c = net.connect({ port, host: '127.0.0.1' });
		c.setTimeout(500);
		c.once('connect', () => { c.destroy(); resolve(true); });
		c.once('error', () => resolve(false));
		c.once('timeout', () => { c.destroy(); resolve(false); });
	});
}

async function waitPort(port, child, what) {
	for (let i = 0; i < 100; i++) {        // 10 s at most
		if (child.exitCode !== null)
			throw new Error(`${what} exited with ${child.exitCode}`);
		if (await canConnect(port))
			return;
		await sleep(100);
	}
	throw new Error(`${what} is not listening on ${port}`);
}

function start(args, name) {
	const out = fs.openSync(path.join(tmp, name + '.out'), 'w');
	const child = spawn(args[0], args.slice(1), { cwd: tmp, stdio: ['ignore', out, out] });
	fs.closeSync(out);
	procs.push(child);
	return child;
}

async function stop(child) {
	if (child.exitCode !== null || child.signalCode !== null)
		return;
	const gone = new Promise((r) => child.once('exit', r));
	child.kill('SIGTERM');
	const t = setTimeout(() => child.kill('SIGKILL'), 5000);
	await gone;
	clearTimeout(t);
}

// One HTTP request; resolves { status, headers, body } (never rejects).
function get(port, pth, headers = {}) {
	return new Promise((resolve) => {
		const req = http.get({ host: '127.0.0.1', port, path: pth, headers, agent: false,
			timeout: 5000 }, (res) => {
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
		});
		req.on('timeout', () => req.destroy(new Error('timeout')));
		req.on('error', (e) => resolve({ status: 0, error: e, body: '' }));
	});
}

// Simulated users, told apart by an X-User header (`persist header`, a
// table: the dashboard shows its sessions per server). Most requests come
// back from a known user (persistence hits); one in ten is a new user.
async function traffic() {
	const users = Array.from({ length: 12 }, (_, k) => 'u' + k);
	let i = 0, next = users.length;
	const worker = async (w) => {
		while (!stopTraffic) {
			const k = (i++ * 7 + w) % users.length;
			if (i % 10 === 0)
				users[k] = 'u' + next++;
			await get(front, '/', { 'x-user': users[k] });
			await sleep(15);
		}
	};
	await Promise.all([0, 1, 2].map(worker));
}

before(async () => {
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bollard-browser-'));
	const ports = {};
	for (const a of APPS) {
		ports[a] = await freePort();
		const c = start([DEMO, '--name', a, '--port', String(ports[a]), '--threads', '1'], a);
		await waitPort(ports[a], c, a);
	}
	front = await freePort();
	stats = await freePort();
	const conf = [
		'global',
		'    threads 1',
		'    log off',
		`    stats-listen 127.0.0.1:${stats}`,
		'    stats-admin on',
		'',
		'defaults',
		'    timeout connect 2s',
		'    timeout client 10s',
		'    timeout server 10s',
		'',
		'frontend web',
		`    bind 127.0.0.1:${front}`,
		'    default-backend shop',
		'',
		'backend shop',
		'    balance roundrobin',
		'    persist header X-User expire 30m',
		...APPS.map((a) => `    server ${a} 127.0.0.1:${ports[a]}`),
		'',
	].join('\n');
	fs.writeFileSync(path.join(tmp, 'bollard.conf'), conf);
	const b = start([BOLLARD, '-c', path.join(tmp, 'bollard.conf')], 'bollard');
	await waitPort(front, b, 'bollard');
	await waitPort(stats, b, 'bollard stats');
	trafficDone = traffic();
	browser = await chromium.launch({
		executablePath: CHROMIUM,
		args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
		timeout: 60000,
	});
});

after(async () => {
	stopTraffic = true;
	if (browser)
		await browser.close().catch(() => {});
	if (trafficDone)
		await trafficDone;
	for (const c of procs.reverse())
		await stop(c);
	if (tmp && !process.env.KEEP_TMP)
		fs.rmSync(tmp, { recursive: true, force: true });
});

// Collects console errors and uncaught exceptions of a page.
function watchErrors(page) {
	const errors = [];
	page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
	page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
	return errors;
}

const num = (s) => Number(String(s).trim());

test('dashboard under traffic: servers, live numbers, drain button, no errors', { timeout: 120000 }, async () => {
	const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
	const errors = watchErrors(page);
	await page.goto(`http://127.0.0.1:${stats}/`);

	for (const a of APPS)
		await page.locator(`[data-server="shop/${a}"]`).waitFor({ timeout: 15000 });
	assert.equal(await page.locator('section.be[data-backend="shop"]').count(), 1);
	assert.equal(await page.locator('[data-server]').count(), APPS.length);
	for (const a of APPS)
		assert.equal(await page.locator(`[data-server="shop/${a}"]`).getAttribute('data-state'), 'ready');

	// the request counter moves as traffic flows (polls every 1.5 s)
	const total = page.locator('[data-backend="shop"] [data-k="req-total"]');
	await page.waitForFunction(() => {
		const e = document.querySelector('[data-backend="shop"] [data-k="req-total"]');
		return e && /^\d+$/.test(e.textContent);
	}, null, { timeout: 15000 });
	const first = num(await total.textContent());
	await page.waitForFunction((n) => {
		const e = document.querySelector('[data-backend="shop"] [data-k="req-total"]');
		return Number(e.textContent) > n;
	}, first, { timeout: 15000 });
	const second = num(await total.textContent());
	assert.ok(second > first, `requests total ${first} then ${second}`);
	// the rate has become a positive number once two polls were seen
	await page.waitForFunction(() => {
		const e = document.getElementById('rps');
		return e && Number(e.textContent) > 0;
	}, null, { timeout: 15000 });

	// drain app2 with its button: the page and the API both say so
	await page.locator('[data-server="shop/app2"] button[data-state="drain"]').click();
	await page.waitForFunction(() =>
		document.querySelector('[data-server="shop/app2"]').dataset.state === 'drain',
	null, { timeout: 15000 });
	const api = JSON.parse((await get(stats, '/api/servers')).body);
	const app2 = api.servers.find((s) => s.server === 'app2');
	assert.equal(app2.state, 'drain');
	assert.ok(api.servers.filter((s) => s.server !== 'app2').every((s) => s.state === 'ready'));
	// the change is listed
	await page.waitForFunction(() =>
		/shop\/app2 ready \u2192 drain/.test(document.getElementById('evlist').textContent),
	null, { timeout: 15000 });

	// let the chart fill for the screenshot, then keep one
	await sleep(6000);
	fs.mkdirSync(path.join(ROOT, 'build'), { recursive: true });
	await page.screenshot({ path: path.join(ROOT, 'build/dashboard.png'), fullPage: true });

	// a phone: same page, nothing wider than the screen
	const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true,
		hasTouch: true, deviceScaleFactor: 2 });
	const phoneErrors = watchErrors(phone);
	await phone.goto(`http://127.0.0.1:${stats}/`);
	for (const a of APPS)
		await phone.locator(`[data-server="shop/${a}"]`).waitFor({ timeout: 15000 });
	await sleep(2000);
	const width = await phone.evaluate(() => document.documentElement.scrollWidth);
	assert.ok(width <= 390, `the page is ${width}px wide on a 390px phone`);
	await phone.screenshot({ path: path.join(ROOT, 'build/dashboard-phone.png'), fullPage: true });

	// ready again, through the button
	await page.locator('[data-server="shop/app2"] button[data-state="ready"]').click();
	await page.waitForFunction(() =>
		document.querySelector('[data-server="shop/app2"]').dataset.state === 'ready',
	null, { timeout: 15000 });

	assert.deepEqual([...errors, ...phoneErrors], []);
});
