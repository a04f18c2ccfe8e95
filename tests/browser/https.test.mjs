// The demo over HTTPS in a real browser (issue 12 items 7 and 8).
//
// Runs the demo's own configuration (examples/demo.conf, its addresses
// moved to free loopback ports, its TLS bind's alpn set per case) with the
// certificate the demo generates (scripts/demo-tls.sh: a local CA and a
// certificate for localhost signed by it) in front of three demo apps, and
// drives Debian's headless Chromium through playwright-core, as the
// dashboard test does. The browser trusts the CA the way the demo tells a
// user to: certutil puts ca.pem into the NSS store under the browser's
// (temporary) HOME, so Chromium verifies the whole chain, the name and the
// CA's name constraints; nothing is ignored. A browser without the CA must
// refuse the page, which shows the trust comes from that import.
//
// Per case: the page loaded over HTTPS and reloaded several times stays on
// one server with its visit counter going up by one each time (the Secure
// insert cookie, persist cookie), a form POST lands on that server too, and
// the protocol the browser used (Navigation Timing's nextHopProtocol) is
// the one the bind's ALPN allows.
//
// Run: node --test tests/browser/https.test.mjs (scripts/browser-test.sh)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, waitPort, startChild, stop } from './procs.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BOLLARD = process.env.BOLLARD_BIN || path.join(ROOT, 'build/bollard');
const DEMO = path.join(ROOT, 'build/bollard-demo-app');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const RELOADS = 5;

// The TLS bind's ALPN and the protocol the browser must then use: the
// demo's own (HTTP/2 first), and HTTP/1.1 alone.
const CASES = [
	{ alpn: 'h2,http/1.1', protocol: 'h2' },
	{ alpn: 'http/1.1', protocol: 'http/1.1' },
];

const procs = [];          // every child we started, stopped in after()
let tmp, tls, appPorts = [], trusted, untrusted;

const start = (args, name, cwd, env) => startChild(procs, tmp, args, name, { cwd, env });

// examples/demo.conf with its fixed addresses replaced by free ports and
// the TLS bind's alpn by ALPN; each replaced text must be there once, so
// a change to demo.conf this does not follow fails here, not silently.
function demoConf(ports, alpn) {
	let conf = fs.readFileSync(path.join(ROOT, 'examples/demo.conf'), 'utf8');
	const swap = (from, to) => {
		const n = conf.split(from).length - 1;
		assert.equal(n, 1, `examples/demo.conf: "${from}" found ${n} times`);
		conf = conf.replace(from, to);
	};
	swap('bind 127.0.0.1:8080\n', `bind 127.0.0.1:${ports.front}\n`);
	swap('bind 127.0.0.1:8443 ', `bind 127.0.0.1:${ports.tls} `);
	swap(' alpn h2,http/1.1\n', ` alpn ${alpn}\n`);
	swap('stats-listen 127.0.0.1:8404', `stats-listen 127.0.0.1:${ports.stats}`);
	swap('threads auto', 'threads 1');
	swap('log stdout', 'log off');
	for (let i = 0; i < 3; i++)
		swap(`127.0.0.1:${9001 + i}\n`, `127.0.0.1:${appPorts[i]}\n`);
	return conf;
}

async function launch(home) {
	return chromium.launch({
		executablePath: CHROMIUM,
		args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
		env: { ...process.env, HOME: home },
		timeout: 60000,
	});
}

before(async () => {
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bollard-https-'));
	tls = path.join(tmp, 'tls');
	execFileSync(path.join(ROOT, 'scripts/demo-tls.sh'), [tls], { stdio: 'pipe' });
	for (let i = 0; i < 3; i++) {
		const port = await freePort();
		appPorts.push(port);
		const c = start([DEMO, '--name', `app${i + 1}`, '--port', String(port), '--threads', '1'],
			`app${i + 1}`, tmp);
		await waitPort(port, c, `app${i + 1}`);
	}
	// what the demo prints for Chromium on Linux, under a HOME of our own
	const home = path.join(tmp, 'home');
	const nssdb = path.join(home, '.pki/nssdb');
	fs.mkdirSync(nssdb, { recursive: true });
	execFileSync('certutil', ['-d', 'sql:' + nssdb, '-N', '--empty-password'], { stdio: 'pipe' });
	execFileSync('certutil', ['-d', 'sql:' + nssdb, '-A', '-t', 'C,,', '-n', 'bollard-demo',
		'-i', path.join(tls, 'ca.pem')], { stdio: 'pipe' });
	trusted = await launch(home);
	const bare = path.join(tmp, 'home-without-ca');
	fs.mkdirSync(bare);
	untrusted = await launch(bare);
});

after(async () => {
	for (const b of [trusted, untrusted])
		if (b)
			await b.close().catch(() => {});
	for (const c of procs.reverse())
		await stop(c);
	if (tmp && !process.env.KEEP_TMP)
		fs.rmSync(tmp, { recursive: true, force: true });
});

// bollard with the demo's configuration, in a directory of its own.
async function startBollard(alpn) {
	const ports = { front: await freePort(), tls: await freePort(), stats: await freePort() };
	const dir = fs.mkdtempSync(path.join(tmp, 'bollard-'));
	fs.writeFileSync(path.join(dir, 'demo.conf'), demoConf(ports, alpn));
	const b = start([BOLLARD, '-c', path.join(dir, 'demo.conf')], path.basename(dir), dir,
		{ ...process.env, BOLLARD_TLS_CRT: path.join(tls, 'localhost.pem') });
	await waitPort(ports.tls, b, 'bollard');
	await waitPort(ports.front, b, 'bollard');
	return { b, ports };
}

const shown = (page) => page.evaluate(() => ({
	server: document.getElementById('server').textContent,
	visits: Number(document.getElementById('visits').textContent),
	session: document.getElementById('session').textContent,
	cart: Number(document.getElementById('cart-total').textContent),
	protocol: performance.getEntriesByType('navigation')[0].nextHopProtocol,
}));

for (const c of CASES) {
	test(`demo over HTTPS (alpn ${c.alpn}): trusted CA, sticky across reloads, ${c.protocol}`,
		{ timeout: 120000 }, async (t) => {
		const { b, ports } = await startBollard(c.alpn);
		const url = `https://localhost:${ports.tls}/`;
		try {
			// without the CA, the browser refuses the certificate
			const bare = await untrusted.newPage();
			await assert.rejects(bare.goto(url), /ERR_CERT_AUTHORITY_INVALID/);
			await bare.close();

			const page = await trusted.newPage();
			const errors = [];
			page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
			const res = await page.goto(url);
			assert.equal(res.status(), 200);
			const sec = await res.securityDetails();
			assert.equal(sec.protocol, 'TLS 1.3');
			assert.equal(sec.subjectName, 'localhost');
			assert.match(sec.issuer, /^bollard demo local CA/);
			const first = await shown(page);
			t.diagnostic(`protocol ${first.protocol} over ${sec.protocol}, served by ${first.server}`);
			assert.equal(first.protocol, c.protocol);
			assert.match(first.server, /^app[123]$/);
			// the insert cookie the browser keeps is Secure (TLS bind)
			const cookies = await page.context().cookies(url);
			const ck = cookies.find((k) => k.name === 'BOLLARD');
			assert.ok(ck, `no BOLLARD cookie: ${JSON.stringify(cookies)}`);
			assert.equal(ck.secure, true);

			let prev = first;
			for (let i = 0; i < RELOADS; i++) {
				const r = await page.reload();
				assert.equal(r.status(), 200);
				const now = await shown(page);
				assert.deepEqual([now.server, now.session, now.visits, now.protocol],
					[first.server, first.session, prev.visits + 1, c.protocol],
					`reload ${i + 1}: ${JSON.stringify(now)} after ${JSON.stringify(prev)}`);
				prev = now;
			}
			// a form POST over HTTPS reaches the same server and session
			await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
			const cart = await shown(page);
			assert.deepEqual([cart.server, cart.session, cart.cart], [first.server, first.session,
				first.cart + 1], JSON.stringify(cart));
			assert.deepEqual(errors, []);
			await page.close();
		} finally {
			await stop(b);
		}
	});
}
