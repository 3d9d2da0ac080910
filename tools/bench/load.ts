/**
 * Load generation (autocannon, in the benchmark's own process) and the CPU
 * each process used meanwhile — on a small machine the load generator competes
 * with the servers, so the numbers only make sense together.
 */
import autocannon from "autocannon";
import { positiveInt } from "./cli";
import { machineCpuMs, processCpuMs, type Proc } from "./procs";

export interface LoadOptions {
	connections: number;
	durationSec: number;
	warmupSec: number;
	pipelining: number;
}

/** Flag definitions for `parseFlags`; read them back with `loadOptionsFrom`. */
export const LOAD_FLAGS = {
	connections: { type: "string" },
	duration: { type: "string" },
	warmup: { type: "string" },
} as const;

export const LOAD_USAGE = `  --connections N   concurrent connections (default 64)
  --duration S      measured seconds per target (default 10)
  --warmup S        unreported warm-up seconds per target (default 3, 0 = none)`;

export function loadOptionsFrom(values: { connections?: string; duration?: string; warmup?: string }): LoadOptions {
	return {
		connections: positiveInt("connections", values.connections, 64),
		durationSec: positiveInt("duration", values.duration, 10),
		warmupSec: positiveInt("warmup", values.warmup, 3, { allowZero: true }),
		pipelining: 1,
	};
}

export interface Request {
	url: string;
	method?: string;
	headers?: Record<string, string>;
	body?: string;
}

export interface LoadResult {
	/** Mean of the per-second samples. */
	rps: number;
	requests: number;
	/** Latency in ms (autocannon resolves whole milliseconds; 2xx answers only). */
	p50: number;
	p99: number;
	p999: number;
	non2xx: number;
	errors: number;
	timeouts: number;
	statusCodes: Record<string, number>;
	/**
	 * Percent of one core during the run: each watched process, the load
	 * generator, everything else on the machine (other servers such as NATS, or
	 * whatever else is running — a disturbance), the machine in total, and the
	 * time the hypervisor stole from this machine's cores.
	 */
	cpu: CpuShare | undefined;
}

/** Runs for `durationSec`, or until `amount` requests when given. */
export async function runLoad(req: Request, opts: { connections: number; durationSec: number; pipelining: number; amount?: number }, watch: Proc[] = []): Promise<LoadResult> {
	const before = cpuSnapshot(watch);
	const r = await autocannon({
		// autocannon takes an explicit `undefined` as a value, so unset fields must be absent.
		...Object.fromEntries(Object.entries(req).filter(([, v]) => v !== undefined)),
		url: req.url,
		connections: opts.connections,
		...(opts.amount ? { amount: opts.amount } : { duration: opts.durationSec }),
		pipelining: opts.pipelining,
	});
	const after = cpuSnapshot(watch);
	return {
		rps: r.requests.average,
		requests: r.requests.total,
		p50: r.latency.p50,
		p99: r.latency.p99,
		p999: r.latency.p99_9,
		non2xx: r.non2xx,
		errors: r.errors,
		timeouts: r.timeouts,
		statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => [code, s.count])),
		cpu: cpuShare(before, after, watch),
	};
}

/** Why a run cannot be trusted (empty when it can). */
export function runProblems(r: LoadResult): string[] {
	const out: string[] = [];
	if (r.non2xx) out.push(`${r.non2xx} non-2xx answers (${JSON.stringify(r.statusCodes)})`);
	if (r.errors) out.push(`${r.errors} errors (${r.timeouts} of them timeouts)`);
	if (!r.requests) out.push("no requests completed");
	return out;
}

export interface CpuShare {
	processes: Record<string, number>;
	loadGenerator: number;
	others: number;
	machine: number;
	steal: number;
}

/** Steal above this share of one core makes a run's figures low; the report says so beside them. */
export const STEAL_WARN_PCT = 10;

interface CpuSnapshot {
	at: bigint;
	self: NodeJS.CpuUsage;
	machine: { busy: number; steal: number };
	procs: (number | undefined)[];
}

function cpuSnapshot(watch: Proc[]): CpuSnapshot {
	return { at: process.hrtime.bigint(), self: process.cpuUsage(), machine: machineCpuMs(), procs: watch.map(p => processCpuMs(p.pid)) };
}

function cpuShare(a: CpuSnapshot, b: CpuSnapshot, watch: Proc[]): LoadResult["cpu"] {
	const wallMs = Number(b.at - a.at) / 1e6;
	const pct = (ms: number) => Math.round((ms / wallMs) * 100);
	const processes: Record<string, number> = {};
	for (const [i, p] of watch.entries()) {
		const start = a.procs[i];
		const end = b.procs[i];
		if (start === undefined || end === undefined) return undefined;
		processes[p.name] = pct(end - start);
	}
	const loadGenerator = pct((b.self.user + b.self.system - (a.self.user + a.self.system)) / 1000);
	const machine = pct(b.machine.busy - a.machine.busy);
	const ours = loadGenerator + Object.values(processes).reduce((x, y) => x + y, 0);
	return { processes, loadGenerator, others: Math.max(0, machine - ours), machine, steal: pct(b.machine.steal - a.machine.steal) };
}

/** One line per run: each server, the load generator, the rest, the machine, and steal (flagged when it skews the figures). */
export function cpuText(cpu: CpuShare): string {
	const servers = Object.entries(cpu.processes).map(([name, p]) => `${name} ${p} %`);
	const steal = `steal ${cpu.steal} %${cpu.steal > STEAL_WARN_PCT ? " (the hypervisor took CPU from this machine: figures are low)" : ""}`;
	return [...servers, `autocannon ${cpu.loadGenerator} %`, `others ${cpu.others} %`, `machine ${cpu.machine} %`, steal].join(", ");
}

/** CPU the machine uses over `ms` (percent of one core) — to notice other work that would skew a run. */
export async function machineBusyPct(ms = 1_000): Promise<number> {
	const start = machineCpuMs().busy;
	const at = process.hrtime.bigint();
	await new Promise(resolve => setTimeout(resolve, ms));
	return Math.round(((machineCpuMs().busy - start) / (Number(process.hrtime.bigint() - at) / 1e6)) * 100);
}
