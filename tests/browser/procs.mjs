// What the browser tests share: free loopback ports, waiting for a port,
// and the processes they start, each stopped by its PID.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
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

export async function waitPort(port, child, what) {
	for (let i = 0; i < 100; i++) {        // 10 s at most
		if (child.exitCode !== null)
			throw new Error(`${what} exited with ${child.exitCode}`);
		if (await canConnect(port))
			return;
		await sleep(100);
	}
	throw new Error(`${what} is not listening on ${port}`);
}

// Starts ARGS with its output in LOGDIR/NAME.out and records the child in
// PROCS, for the test's after() to stop.
export function startChild(procs, logdir, args, name, opts = {}) {
	const out = fs.openSync(path.join(logdir, name + '.out'), 'w');
	const child = spawn(args[0], args.slice(1), { cwd: logdir, ...opts, stdio: ['ignore', out, out] });
	fs.closeSync(out);
	procs.push(child);
	return child;
}

// SIGTERM, then SIGKILL if it is still there after 5 s.
export async function stop(child) {
	if (child.exitCode !== null || child.signalCode !== null)
		return;
	const gone = new Promise((r) => child.once('exit', r));
	child.kill('SIGTERM');
	const t = setTimeout(() => child.kill('SIGKILL'), 5000);
	await gone;
	clearTimeout(t);
}
