/**
 * Test support: platform nodes as real child processes (`server.ts`, as
 * `npm start` runs it), for restart, mesh and failover tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export { freePort } from "../../tools/bench/procs";

const ROOT = path.resolve(__dirname, "../..");

export interface NodeProcess {
	name: string;
	proc: ChildProcess;
	output(): string;
	/** Graceful stop (SIGTERM); resolves with the exit code. */
	stop(): Promise<number | null>;
	/** Crash: SIGKILL, no goodbye to the mesh. */
	kill9(): Promise<void>;
}

export function spawnNode(name: string, env: Record<string, string>): NodeProcess {
	const proc = spawn(process.execPath, ["--import", "tsx", "server.ts"], {
		cwd: ROOT,
		env: { ...process.env, NODE_ENV: "test", LOG_LEVEL: "warn", ...env },
		stdio: ["ignore", "pipe", "pipe"],
	});
	let out = "";
	proc.stdout!.on("data", d => (out += d));
	proc.stderr!.on("data", d => (out += d));
	const exited = new Promise<number | null>(resolve => proc.once("exit", code => resolve(code)));
	return {
		name,
		proc,
		output: () => out,
		async stop() {
			if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
			return exited;
		},
		async kill9() {
			if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
			await exited;
		},
	};
}

/** Re-check `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	let lastError: unknown;
	for (;;) {
		try {
			const v = await probe();
			if (v !== undefined) return v;
		} catch (err) {
			lastError = err;
		}
		if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
		await new Promise(r => setTimeout(r, everyMs));
	}
}

/** Resolves once `url` answers with a status `accept` likes. */
export function waitForHttp(url: string, accept: (status: number) => boolean = s => s === 200, timeoutMs = 30_000, node?: NodeProcess) {
	return waitFor(`${url}${node ? ` (${node.name})` : ""}`, async () => {
		if (node && node.proc.exitCode !== null) throw new Error(`${node.name} exited: ${node.output()}`);
		const res = await fetch(url).catch(() => undefined);
		if (res) await res.arrayBuffer();
		return res && accept(res.status) ? res.status : undefined;
	}, timeoutMs);
}
