// The dashboard in a real browser (issue 5 item 4, doc/dashboard.md).
//
// Starts three demo apps and bollard (build/bollard, stats-admin on) on free
// loopback ports (one a backup, one with a slow start), sends traffic from
// simulated users that stick to their server (persist cookie, then persist
// header), and drives Debian's headless Chromium through
// playwright-core (never a downloaded browser): every server is shown, the
// numbers move with the traffic, the drain button drains a server (on the
// page and in /api/servers), totals, results by method, moves by reason,
// the y axis, estimated cookie sessions, 5xx, queue, the backup marker and
// a slow-start ramp are shown, the imbalance leaves out servers that take
// no new sessions ("n/a" when fewer than two do), the page logs no error,
// and it fits a phone.
// Screenshots go to build/dashboard.png and build/dashboard-phone.png.
// Everything started here is stopped by PID, whatever happens.
//
// Run: node --test tests/browser/dashboard.test.mjs (scripts/browser-test.sh)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { sleep, freePort, waitPort, startChild, stop } from './procs.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BOLLARD = process.env.BOLLARD_BIN || path.join(ROOT, 'build/bollard');
const DEMO = path.join(ROOT, 'build/bollard-demo-app');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const APPS = ['app1', 'app2', 'app3', 'spare'];

const procs = [];          // every child we started, stopped in after()
let tmp, stats, front, browser, stopTraffic = false, trafficDone;

const start = (args, name) => startChild(procs, tmp, args, name);

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

// Simulated users with a cookie jar each (`persist cookie`, whose sessions
// the dashboard estimates per server) and an X-User header (`persist
// header`, a table it counts). Most requests come back from a known user
// (persistence hits); one in ten is a new user; one in twenty-five asks the
// app for a 500, for the 5xx column.
async function traffic() {
	const user = (id) => ({ id, jar: new Map() });   // cookie name -> name=value
	const users = Array.from({ length: 12 }, (_, k) => user('u' + k));
	let i = 0, next = users.length;
	const worker = async (w) => {
		while (!stopTraffic) {
			const k = (i++ * 7 + w) % users.length;
			if (i % 10 === 0)
				users[k] = user('u' + next++);
			const u = users[k];
			const headers = { 'x-user': u.id };
			if (u.jar.size)
				headers.cookie = [...u.jar.values()].join('; ');
			const r = await get(front, i % 25 === 0 ? '/status?code=500' : '/', headers);
			for (const sc of (r.headers && r.headers['set-cookie']) || []) {
				const nv = sc.split(';')[0];
				u.jar.set(nv.split('=')[0], nv);
			}
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
		'    persist cookie BOLLARD insert max-idle 30m',
		'    persist header X-User expire 30m',
		`    server app1 127.0.0.1:${ports.app1}`,
		`    server app2 127.0.0.1:${ports.app2}`,
		`    server app3 127.0.0.1:${ports.app3} slowstart 120s`,
		`    server spare 127.0.0.1:${ports.spare} backup`,
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

const text = (page, sel) => page.locator(sel).first().textContent();

test('dashboard under traffic: servers, live numbers, drain button, no errors', { timeout: 150000 }, async () => {
	const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
	const errors = watchErrors(page);
	await page.goto(`http://127.0.0.1:${stats}/`);

	for (const a of APPS)
		await page.locator(`[data-server="shop/${a}"]`).waitFor({ timeout: 15000 });
	assert.equal(await page.locator('section.be[data-backend="shop"]').count(), 1);
	assert.equal(await page.locator('[data-server]').count(), APPS.length);
	for (const a of APPS)
		assert.equal(await page.locator(`[data-server="shop/${a}"]`).getAttribute('data-state'), 'ready');
	// the backup is marked as one, the others are not
	assert.equal(await page.locator('[data-server="shop/spare"]').getAttribute('data-backup'), '1');
	assert.match(await text(page, '[data-server="shop/spare"] .c-n'), /backup$/);
	assert.equal(await page.locator('[data-server="shop/app1"] .tag').count(), 0);

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

	// totals since start beside the rates; they agree with /api/stats
	await page.waitForFunction(() => Number(document.querySelector('[data-k="total-hit"]').textContent) > 0,
		null, { timeout: 15000 });
	const shown = num(await text(page, '[data-k="total-hit"]'));
	const st = JSON.parse((await get(stats, '/api/stats')).body).backends[0];
	const hits = st.persistence.reduce((a, m) => a + m.hit, 0);
	assert.ok(shown > 0 && shown <= hits, `hits shown ${shown}, /api/stats ${hits}`);
	// results by method: one row per persist line, in order
	assert.deepEqual(await page.locator('[data-k="by-method"] tbody tr').evaluateAll(
		(rows) => rows.map((r) => r.dataset.method)), ['cookie', 'header']);
	assert.match(await text(page, '[data-k="moves"]'), /^moved, by reason: down \d+, maint \d+, removed \d+, connect \d+, maxconn \d+$/);
	// a y axis: three ticks, the top one above zero once traffic is charted
	await page.waitForFunction(() => {
		const t = [...document.querySelectorAll('[data-k="yaxis"] span')].map((s) => s.textContent);
		return t.length === 3 && t[2] === '0.00/s' && parseFloat(t[0]) > 0;
	}, null, { timeout: 15000 });
	// sessions: cookie sessions estimated (marked ≈) on the servers taking them
	await page.waitForFunction(() => [...document.querySelectorAll('[data-k="sessions"]')]
		.some((e) => /^\u2248[1-9]\d*$/.test(e.textContent)), null, { timeout: 15000 });
	// 5xx per server, from the app's 500s
	await page.waitForFunction(() => [...document.querySelectorAll('[data-k="5xx"]')]
		.some((e) => Number(e.textContent) > 0), null, { timeout: 20000 });
	for (const a of APPS)
		assert.equal(await text(page, `[data-server="shop/${a}"] [data-k="queue"]`), '0');
	// imbalance over app1..app3 (the backup does not count): a number
	await page.waitForFunction(() => /^\d/.test(document.querySelector('[data-k="imbalance"]').textContent),
		null, { timeout: 15000 });

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

	// app3 back from maintenance ramps up over its slow start: its weight
	// shows the ramp, and with app2 draining only app1 takes new sessions
	// at full weight, so the imbalance is not applicable
	await page.locator('[data-server="shop/app3"] button[data-state="maint"]').click();
	await page.waitForFunction(() =>
		document.querySelector('[data-server="shop/app3"]').dataset.state === 'maint', null, { timeout: 15000 });
	await page.locator('[data-server="shop/app3"] button[data-state="ready"]').click();
	await page.waitForFunction(() => {
		const w = document.querySelector('[data-server="shop/app3"] [data-k="weight"]');
		return /^\d+\/100 \u2197$/.test(w.textContent) && w.classList.contains('ramp');
	}, null, { timeout: 15000 });
	await page.waitForFunction(() => document.querySelector('[data-k="imbalance"]').textContent === 'n/a',
		null, { timeout: 15000 });
	assert.equal(await text(page, '[data-server="shop/app1"] [data-k="weight"]'), '100');

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
