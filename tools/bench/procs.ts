/**
 * Child processes for benchmarks: start TypeScript servers, wait until they
 * answer HTTP, stop them (and everything they started) again — also when the
 * benchmark is interrupted or fails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const REPO_ROOT = path.resolve(__dirname, "../..");

/** Environment overrides; `undefined` removes an inherited variable. */
export type EnvOverrides = Record<string, string | undefined>;

export interface Proc {
	readonly name: string;
	readonly pid: number;
	/** Set once the process has exited. */
	readonly exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
	/** The last lines the process wrote (stdout and stderr interleaved). */
	output(): string;
	stop(): Promise<void>;
}

const OUTPUT_KEEP = 16_000;
/** The V8 setting of a node that holds the catalog, as `npm start` and docker-compose.yml run it (README, "Runtime settings"). */
const CATALOG_NODE_FLAGS = ["--no-allocation-site-pretenuring"];
// Writing a CPU profile (BENCH_PROFILE) of a long run takes a while after SIGTERM.
const STOP_GRACE_MS = process.env.BENCH_PROFILE ? 60_000 : 5_000;

/**
 * Everything a benchmark started, so that it can all be stopped at once.
 * One per target: closing it stops its processes and removes its temp dirs.
 */
export class Scope {
	private procs: Proc[] = [];
	private dirs: string[] = [];
	private closed = false;

	constructor() {
		openScopes.add(this);
	}

	/**
	 * Runs a TypeScript file of this repo with the Node running the benchmark.
	 * `--import tsx` keeps it to one process (the `tsx` CLI would add a wrapper),
	 * so the pid is the server's own, for stopping and CPU accounting.
	 */
	startTs(name: string, file: string, env: EnvOverrides, args: string[] = []): Proc {
		// BENCH_PROFILE=DIR: every server a benchmark starts writes a CPU profile there when stopped.
		const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${name}.\${pid}.cpuprofile`] : [];
		// SERVICES as the child will see it (an override, else inherited); unset means everything, embedded.
		const services = "SERVICES" in env ? env.SERVICES : process.env.SERVICES;
		const holdsCatalog = file === "server.ts" && (services === undefined || services.split(",").includes("merchants"));
		const platform = holdsCatalog ? CATALOG_NODE_FLAGS : [];
		const proc = startProcess(name, process.execPath, [...profile, ...platform, "--import", "tsx", file, ...args], env);
		this.procs.push(proc);
		return proc;
	}

	/** Any program (a broker binary, say). */
	startCommand(name: string, command: string, args: string[], env: EnvOverrides = {}): Proc {
		const proc = startProcess(name, command, args, env);
		this.procs.push(proc);
		return proc;
	}

	async tempDir(prefix: string): Promise<string> {
		const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
		this.dirs.push(dir);
		return dir;
	}

	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		openScopes.delete(this);
		await Promise.all(this.procs.map(p => p.stop()));
		await Promise.all(this.dirs.map(d => rm(d, { recursive: true, force: true })));
	}
}

const openScopes = new Set<Scope>();
const liveGroups = new Set<number>();

function startProcess(name: string, command: string, args: string[], overrides: EnvOverrides): Proc {
	const env: NodeJS.ProcessEnv = { ...process.env };
	for (const [k, v] of Object.entries(overrides)) {
		if (v === undefined) delete env[k];
		else env[k] = v;
	}
	// Own process group: a stop reaches anything the server spawned, and Ctrl-C
	// in the terminal reaches only the benchmark, which then stops it in order.
	const child: ChildProcess = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
	if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
	const pid = child.pid;
	liveGroups.add(pid);

	let output = "";
	const keep = (chunk: Buffer) => {
		output += chunk.toString();
		if (output.length > OUTPUT_KEEP * 2) output = output.slice(-OUTPUT_KEEP);
	};
	child.stdout!.on("data", keep);
	child.stderr!.on("data", keep);

	let exit: Proc["exit"];
	const exited = new Promise<void>(resolve => {
		child.on("exit", (code, signal) => {
			exit = { code, signal };
			liveGroups.delete(pid);
			resolve();
		});
	});

	const signalGroup = (signal: NodeJS.Signals) => {
		try {
			process.kill(-pid, signal);
		} catch {
			// ESRCH: already gone.
		}
	};

	return {
		name,
		pid,
		get exit() {
			return exit;
		},
		output: () => output.slice(-OUTPUT_KEEP),
		async stop() {
			if (exit) return;
			signalGroup("SIGTERM");
			let timer: NodeJS.Timeout | undefined;
			const forced = new Promise<"timeout">(resolve => (timer = setTimeout(() => resolve("timeout"), STOP_GRACE_MS)));
			if ((await Promise.race([exited, forced])) === "timeout") {
				signalGroup("SIGKILL");
				await exited;
			}
			clearTimeout(timer);
		},
	};
}

/** Stops everything still running (on Ctrl-C, or after a failure). */
export async function closeAllScopes(): Promise<void> {
	await Promise.all([...openScopes].map(s => s.close()));
}

// Last resort if the benchmark dies without closing its scopes: never leave servers behind.
process.on("exit", () => {
	for (const pid of liveGroups) {
		try {
			process.kill(-pid, "SIGKILL");
		} catch {
			// already gone
		}
	}
});

/** An error carrying what the processes printed, which usually says why they failed. */
export function failure(procs: Proc[], message: string): Error {
	const outputs = procs.map(p => [p.name, p.output().trim()]).filter(([, out]) => out);
	return new Error([message, ...outputs.map(([name, out]) => `--- ${name} output ---\n${out}\n---`)].join("\n"));
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/**
 * Polls `url` until `accept(status)` holds; fails early, with the processes'
 * output, if one of `procs` exits first.
 */
export async function waitForHttp(
	procs: Proc[],
	url: string,
	{ timeoutMs = 30_000, init, accept = status => status >= 200 && status < 300 }: { timeoutMs?: number; init?: RequestInit; accept?: (status: number) => boolean } = {},
): Promise<Response> {
	const deadline = Date.now() + timeoutMs;
	let last = "no answer";
	for (;;) {
		const dead = procs.find(p => p.exit);
		if (dead) throw failure([dead], `${dead.name} exited (code ${dead.exit!.code}, signal ${dead.exit!.signal}) before ${url} was ready`);
		try {
			const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2_000) });
			if (accept(res.status)) return res;
			last = `HTTP ${res.status}`;
			await res.body?.cancel();
		} catch (err) {
			last = (err as Error).message;
		}
		if (Date.now() > deadline) throw failure(procs, `${url} not ready after ${timeoutMs / 1000} s (last: ${last})`);
		await sleep(100);
	}
}

/** A port free right now (the OS picks it; the tiny race until a server binds it is acceptable here). */
export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address() as net.AddressInfo;
			srv.close(() => resolve(port));
		});
	});
}

/** Whether something accepts TCP connections at host:port. */
export function canConnect(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
	return new Promise(resolve => {
		const sock = net.connect({ host, port });
		const done = (ok: boolean) => {
			sock.destroy();
			resolve(ok);
		};
		sock.setTimeout(timeoutMs, () => done(false));
		sock.once("connect", () => done(true));
		sock.once("error", () => done(false));
	});
}

/** CPU time (user + system, ms) a process has used so far; undefined where /proc is unavailable. */
export function processCpuMs(pid: number): number | undefined {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		// Fields after the command name, which may itself contain spaces and parentheses.
		const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
		return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
	} catch {
		return undefined;
	}
}

/**
 * The whole machine's CPU time so far (ms, all cores): busy, and stolen — time
 * the hypervisor gave to other guests while this one had work. On a shared VM
 * steal is what makes the same build run 20–60 % slower from one hour to the next.
 */
export function machineCpuMs(): { busy: number; steal: number } {
	try {
		// /proc/stat first: os.cpus() leaves out softirq, where loopback networking spends much of its time.
		const [user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
		return { busy: ((user + nice + system + irq + softirq) * 1000) / 100, steal: ((steal || 0) * 1000) / 100 };
	} catch {
		return { busy: os.cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0), steal: 0 };
	}
}
