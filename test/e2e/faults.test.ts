/**
 * The e2e fault suite (issue 10): the distributed platform as child processes
 * — an api node (api, users, merchants, geo on NeDB), a hardware bridge and
 * three doors nodes — on NATS, Redis and Mosquitto instances of its own (this
 * machine's binaries on free ports, so the suite can stop, pause and restart
 * them), a simulated fleet on that Mosquitto, and steady remote opens through
 * REST (`POST /api/v1/doors/:doorId/open`) round-robin over the fleet. Each
 * scenario injects one fault under that load and checks:
 *
 * 1. at most one physical unlock per command (counted by the cabinets);
 * 2. no failure outside the fault: none before it began, none on a cabinet the
 *    fault did not touch, none on a cabinet after it had answered again;
 * 3. every touched cabinet answers an open again within RECOVERY_GOAL_MS of
 *    the fault's end (a killed doors node's cabinets: within
 *    KILLED_DOORS_RECOVERY_MS of the kill), with the load still running;
 * 4. afterwards (load stopped, every door closed again) each door's platform
 *    state (open, occupied, cabinet online) equals the cabinet's own, and
 *    every reservation and bag the platform reported before the fault is
 *    still reported — by the door actors (`doors.cabinet`) and by
 *    `GET /api/v1/cabinets/:id`.
 *
 * What "touched" means, per scenario:
 * - kill-doors: the cabinets whose lease the killed node held at the kill (read
 *   from Redis). Every other cabinet must not fail at all, also while the
 *   replacement node joins afterwards and takes its share (a planned hand-over
 *   is not a fault). The fault ends at the kill.
 * - kill-hardware, api-kill: every cabinet (every report, resp. every REST
 *   request, passes through the killed node). The fault ends when the
 *   replacement process is started (KILL_DOWN_MS after the kill; its boot
 *   time counts as recovery). The load sees connection errors while the api
 *   node is down: they are the fault's.
 * - mqtt-stop, nats-stop, redis-pause, redis-empty: every cabinet, from the
 *   fault's start until the cabinet's first successful open sent after the
 *   fault ended; "untouched" then means before and after that window. The
 *   fault ends when the server accepts connections again (SIGCONT for the
 *   pause).
 *
 * Scenarios share one platform and run one after another; each begins with a
 * settle check (every cabinet answering opens again, SETTLE_MAX_MS at most).
 * Cabinets an earlier scenario left broken are reported and left out of the
 * later scenario's checks (and fail it). By default redis-empty runs last: on
 * a platform that does not survive it, it would leave every later scenario
 * without a working fleet.
 *
 *   npx jest test/e2e/faults.test.ts --runInBand                     # all
 *   FAULTS=kill-doors,redis-pause npx jest test/e2e/faults.test.ts --runInBand
 *   FAULT_CABINETS=24 FAULT_RATE=24 …                                # fleet size, opens/s
 *
 * Prints a table (one row per scenario) and writes bench-results/faults.json;
 * the nodes' and servers' logs go to bench-results/faults-logs/.
 */
import fs from "node:fs";
import path from "node:path";
import { formatTable } from "../../tools/bench/table";
import {
	analyseScenario, FaultPlatform, fmtKinds, RESULTS_DIR, sleep, type FleetOptions, type OpenLoad,
} from "../support/fault-harness";
import { waitFor } from "../support/processes";

// --- Goals -------------------------------------------------------------------
/** Commands that unlocked a door more than once. */
const MAX_DOUBLE_UNLOCKS = 0;
/** Failed opens outside the fault (before it, on untouched cabinets, after a cabinet recovered). */
const MAX_FAILURES_OUTSIDE_FAULT = 0;
/** Every cabinet of a killed doors node answers again within this long after the kill. */
const KILLED_DOORS_RECOVERY_MS = 10_000;
/** Every cabinet answers again within this long after any fault ends. */
const RECOVERY_GOAL_MS = 30_000;
/** Doors whose platform state differs from the cabinet's after recovery. */
const MAX_STATE_MISMATCHES = 0;
/** Reservations and bags known before a fault and not reported after it. */
const MAX_LOST_HOLDS = 0;

// --- Fault shapes and pacing -----------------------------------------------------
/** How long a stopped or paused server stays down. */
const OUTAGE_MS = 20_000;
/** How long a killed hardware or api node stays down before its replacement starts. */
const KILL_DOWN_MS = 5_000;
/** Load before the fault (the baseline: nothing may fail). */
const PRE_FAULT_MS = 4_000;
/** How long to keep waiting for cabinets beyond the goal, to measure how late they are. */
const RECOVERY_WAIT_MS = RECOVERY_GOAL_MS + 15_000;
/** Load after every touched cabinet has answered again (or the wait ended). */
const POST_RECOVERY_MS = 5_000;
/** Load while the replacement doors node joins, after it owns cabinets. */
const JOIN_OBSERVE_MS = 5_000;
/** Before a fault: every cabinet answering opens, at most this long. */
const SETTLE_MAX_MS = 40_000;
/** After recovery: door states must agree within this long (reports still arriving). */
const STATE_SETTLE_MS = 15_000;

const FLEET: FleetOptions = {
	cabinets: Number(process.env.FAULT_CABINETS ?? 24),
	loadDoors: 4,
	rate: Number(process.env.FAULT_RATE ?? 24),
	heartbeatSec: 2,
	doorCommandTimeoutMs: 3000,
	autoCloseMs: 300,
	latencyMs: [5, 40],
	clientTimeoutMs: 15_000,
	maxInFlight: 400,
};

const SCENARIO_NAMES = ["kill-doors", "kill-hardware", "mqtt-stop", "redis-pause", "nats-stop", "api-kill", "redis-empty"] as const;
type ScenarioName = (typeof SCENARIO_NAMES)[number];

const selected: ScenarioName[] = (() => {
	const raw = process.env.FAULTS?.trim();
	if (!raw) return [...SCENARIO_NAMES];
	const names = raw.split(",").map(s => s.trim()).filter(Boolean);
	const unknown = names.filter(n => !(SCENARIO_NAMES as readonly string[]).includes(n));
	if (unknown.length) throw new Error(`FAULTS names unknown scenario(s) ${unknown.join(", ")}; known: ${SCENARIO_NAMES.join(", ")}`);
	return names as ScenarioName[];
})();

const BINARIES = ["/usr/sbin/nats-server", "/usr/bin/redis-server", "/usr/sbin/mosquitto"];
const run = BINARIES.every(b => fs.existsSync(b)) ? describe : describe.skip;

interface FaultResult {
	faultStart: number;
	faultEnd: number;
	touched: Set<string>;
	touchedLabel: string;
	notes: string[];
	/** A stricter goal for the touched cabinets than RECOVERY_GOAL_MS. */
	recoveryGoalMs?: number;
	/** Runs once the touched cabinets answered again (or the wait ended), load still running. */
	afterRecovery?: () => Promise<string[]>;
}

interface Row {
	scenario: string;
	touched: string;
	excluded: number;
	requests: number;
	ok: number;
	errors: number;
	errorsByKind: Record<string, number>;
	outsideErrors: number;
	outsideByKind: Record<string, number>;
	outsideExamples: string[];
	recoveryGoalMs: number;
	maxRecoveryMs: number | null;
	recoveryMs: Record<string, number | null>;
	withinGoal: string;
	unlocks: number;
	doubleUnlocks: string[];
	stateMismatches: string[];
	lostHolds: string[];
	holdsBefore: number;
	shed: number;
	/** Failed/all opens per second sent, "[" … "]" around the fault. */
	timeline: string;
	faultMs: number;
	scenarioMs: number;
	notes: string[];
	misses: string[];
	result: "pass" | "FAIL";
}

run("fault suite: kills, outages and pauses under load on real NATS, Redis and Mosquitto", () => {
	const suiteStart = Date.now();
	const platform = new FaultPlatform(FLEET);
	let load: OpenLoad | undefined;
	const rows: Row[] = [];
	let startError: unknown;

	beforeAll(async () => {
		try {
			await platform.start();
			load = platform.newLoad();
		} catch (err) {
			startError = err;
			throw err;
		}
	}, 300_000);

	afterAll(async () => {
		await load?.stop().catch(() => undefined);
		report(rows, Date.now() - suiteStart, startError);
		await platform.stop();
	}, 120_000);

	const all = () => platform.cabinets.map(c => c.cabinetId);

	/** A node killed with SIGKILL; its replacement starts KILL_DOWN_MS later. Every cabinet is touched. */
	async function killAndReplace(role: "hardware" | "api") {
		const name = platform.current(role);
		const faultStart = Date.now();
		await platform.kill9(name);
		await sleep(KILL_DOWN_MS);
		const rep = platform.replacementName(role, 2);
		platform.spawn(role, rep);
		return { faultStart, faultEnd: Date.now(), touched: new Set(all()), touchedLabel: "all", notes: [`killed ${name}; ${rep} started ${KILL_DOWN_MS / 1000} s later`] };
	}

	/** A server down (stopped or paused) for OUTAGE_MS. Every cabinet is touched. */
	async function outage(down: () => unknown, up: () => unknown) {
		const faultStart = Date.now();
		try {
			await down();
			await sleep(OUTAGE_MS);
		} finally {
			await up();
		}
		return { faultStart, faultEnd: Date.now(), touched: new Set(all()), touchedLabel: "all", notes: [] as string[] };
	}

	const scenarios: Record<ScenarioName, { title: string; run(): Promise<FaultResult> }> = {
		"kill-doors": {
			title: "kill -9 of the busiest doors node, then a replacement joins",
			async run() {
				const nodes = platform.doorsNodeIds();
				const owners = await platform.leaseOwners();
				const count = new Map(nodes.map(n => [n, 0]));
				for (const o of owners.values()) if (count.has(o)) count.set(o, count.get(o)! + 1);
				const [victim, owned] = [...count].sort((a, b) => b[1] - a[1])[0];
				if (!owned) throw new Error(`no doors node holds a lease (nodes ${nodes.join(", ")}; leases ${JSON.stringify([...owners])})`);
				const name = platform.nameOfNodeId(victim)!;
				const touched = new Set([...owners].filter(([, o]) => o === victim).map(([id]) => id));
				const faultStart = Date.now();
				await platform.kill9(name);
				return {
					faultStart, faultEnd: faultStart, touched, touchedLabel: `${touched.size} of ${name}`, recoveryGoalMs: KILLED_DOORS_RECOVERY_MS,
					notes: [`killed ${name}, lease holder of ${touched.size} cabinets (others: ${[...count].filter(([n]) => n !== victim).map(([n, k]) => `${platform.nameOfNodeId(n)} ${k}`).join(", ")})`],
					async afterRecovery() {
						const rep = platform.replacementName("doors", 4);
						const joinAt = Date.now();
						const node = platform.spawn("doors", rep);
						const owns = await waitFor(`${rep} owning cabinets`, async () => {
							if (node.proc.exitCode !== null) throw new Error(`${rep} exited: ${node.output().slice(-2000)}`);
							const s = await platform.doorsStats(platform.nodeId(rep)).catch(() => undefined);
							return s && s.cabinets > 0 ? s.cabinets : undefined;
						}, 60_000, 250).catch(() => 0);
						const ownedAfter = Date.now() - joinAt;
						await sleep(JOIN_OBSERVE_MS);
						const share = await platform.doorsStats(platform.nodeId(rep)).then(s => s.cabinets, () => "?");
						const note = `replacement ${rep} started at kill+${fmtS(joinAt - faultStart)}, owned its first ${owns} cabinets after ${fmtS(ownedAfter)}, ${share} cabinets ${JOIN_OBSERVE_MS / 1000} s later`;
						return owns ? [note] : [note, `${rep} did not take any cabinet within 60 s`];
					},
				};
			},
		},
		"kill-hardware": {
			title: "kill -9 of the hardware node (a replacement starts 5 s later)",
			run: () => killAndReplace("hardware"),
		},
		"mqtt-stop": {
			title: "the MQTT broker stopped for 20 s",
			run: () => outage(() => platform.mqtt.stop(), () => platform.mqtt.start()),
		},
		"redis-pause": {
			title: "Redis paused for 20 s (SIGSTOP/SIGCONT)",
			run: () => outage(() => platform.redis.pause(), () => platform.redis.resume()),
		},
		"nats-stop": {
			title: "NATS stopped for 20 s",
			run: () => outage(() => platform.nats.stop(), () => platform.nats.start()),
		},
		"api-kill": {
			title: "kill -9 of the api node (a replacement starts 5 s later on the same port and data)",
			run: () => killAndReplace("api"),
		},
		"redis-empty": {
			title: "Redis restarted empty",
			async run() {
				const faultStart = Date.now();
				try {
					await platform.redis.stop();
				} finally {
					await platform.redis.start();
				}
				return { faultStart, faultEnd: Date.now(), touched: new Set(all()), touchedLabel: "all", notes: [] };
			},
		},
	};

	async function runScenario(name: ScenarioName): Promise<void> {
		if (!load) throw new Error("the platform did not start");
		const t0 = Date.now();
		const misses: string[] = [];
		const notes: string[] = [];
		const cabinets = all();

		// Settle: load on, a fresh reservation on every cabinet, every cabinet answering opens.
		load.start();
		const freshFailed = await platform.freshReservations(name);
		const settleStart = Date.now();
		let healthy = new Set<string>();
		await waitFor("every cabinet answering opens", async () => {
			healthy = load!.healthySince(settleStart);
			return healthy.size === cabinets.length ? true : undefined;
		}, SETTLE_MAX_MS, 200).catch(() => undefined);
		const excluded = new Set(cabinets.filter(id => !healthy.has(id)));
		if (excluded.size) {
			misses.push(`${excluded.size} of ${cabinets.length} cabinets did not answer opens within ${SETTLE_MAX_MS / 1000} s before the fault (an earlier scenario left them broken); left out of this scenario's checks: ${[...excluded].slice(0, 6).join(", ")}${excluded.size > 6 ? ", …" : ""}`);
		}
		const freshMissing = freshFailed.filter(id => !excluded.has(id));
		if (freshMissing.length) misses.push(`could not make a fresh reservation before the fault on ${freshMissing.length} answering cabinets: ${freshMissing.slice(0, 6).join(", ")}`);
		const checked = cabinets.filter(id => !excluded.has(id));
		const before = await platform.snapshotHeld(checked);
		if (before.unreadable.length) notes.push(`doors.cabinet unreadable before the fault for ${before.unreadable.length} cabinets`);
		const lostEarlier = await platform.lostSinceStart(checked);
		if (lostEarlier.length) notes.push(`${lostEarlier.length} suite-made holds already gone before this scenario`);
		const doubles0 = platform.doubleUnlocks();
		const unlocks0 = platform.unlockTotal();
		const shed0 = load.shed;

		// Baseline, fault, recovery, more load.
		const start = Date.now();
		await sleep(PRE_FAULT_MS);
		const fault = await scenarios[name].run();
		notes.push(...fault.notes);
		const goal = fault.recoveryGoalMs ?? RECOVERY_GOAL_MS;
		const targets = [...fault.touched].filter(id => !excluded.has(id));
		await waitFor("the touched cabinets answering again", async () => {
			const first = load!.firstSuccessSince(fault.faultEnd);
			return targets.every(id => first.has(id)) ? true : undefined;
		}, RECOVERY_WAIT_MS, 200).catch(() => undefined);
		if (fault.afterRecovery) {
			const more = await fault.afterRecovery();
			notes.push(more[0]);
			misses.push(...more.slice(1));
		}
		await sleep(POST_RECOVERY_MS);
		const end = Date.now();
		await load.stop();

		// After recovery: states and holds.
		await platform.doorsClosed();
		const cons = await platform.consistency(checked, before.held, STATE_SETTLE_MS);
		const a = analyseScenario(load.records, { start, faultStart: fault.faultStart, faultEnd: fault.faultEnd, end }, fault.touched, excluded);
		const doubles = [...platform.doubleUnlocks()].filter(([k, n]) => doubles0.get(k) !== n).map(([k, n]) => `${k}×${n}`);

		const late = [...a.recovery].filter(([, ms]) => ms === undefined || ms > goal);
		const overall = [...a.recovery].filter(([, ms]) => ms === undefined || ms > RECOVERY_GOAL_MS);
		if (doubles.length > MAX_DOUBLE_UNLOCKS) misses.push(`${doubles.length} commands unlocked a door more than once: ${doubles.slice(0, 8).join(", ")}`);
		if (a.outside.count > MAX_FAILURES_OUTSIDE_FAULT) {
			misses.push(`${a.outside.count} failed opens outside the fault (${fmtKinds(a.outside.byKind, 5)}), e.g.:\n    ${a.outside.examples.join("\n    ")}`);
		}
		const describeLate = (list: typeof late) => list.slice(0, 8).map(([id, ms]) => `${id} ${ms === undefined ? "never" : fmtS(ms)}`).join(", ");
		if (late.length) {
			misses.push(`${late.length} of ${a.recovery.size} touched cabinets did not answer an open within ${goal / 1000} s of the fault's end (waited ${((Date.now() - fault.faultEnd) / 1000).toFixed(0)} s): ${describeLate(late)}`);
		}
		if (goal < RECOVERY_GOAL_MS && overall.length) misses.push(`${overall.length} of them not even within ${RECOVERY_GOAL_MS / 1000} s`);
		if (cons.state.length > MAX_STATE_MISMATCHES) {
			misses.push(`${cons.state.length} doors/cabinets differ from the cabinet's own state ${STATE_SETTLE_MS / 1000} s after the load stopped:\n    ${cons.state.slice(0, 8).join("\n    ")}`);
		}
		if (cons.lost.length > MAX_LOST_HOLDS) {
			misses.push(`${cons.lost.length} of ${before.held.length} reservations/bags known before the fault are no longer reported:\n    ${cons.lost.slice(0, 8).join("\n    ")}`);
		}

		const row: Row = {
			scenario: name, touched: fault.touchedLabel, excluded: excluded.size,
			requests: a.requests, ok: a.ok, errors: a.errors, errorsByKind: a.errorsByKind,
			outsideErrors: a.outside.count, outsideByKind: a.outside.byKind, outsideExamples: a.outside.examples,
			recoveryGoalMs: goal, maxRecoveryMs: a.notRecovered.length ? null : (a.maxRecoveryMs ?? 0),
			recoveryMs: Object.fromEntries([...a.recovery].map(([id, ms]) => [id, ms ?? null])),
			withinGoal: `${a.recovery.size - late.length}/${a.recovery.size}`,
			unlocks: platform.unlockTotal() - unlocks0, doubleUnlocks: doubles,
			stateMismatches: cons.state, lostHolds: cons.lost, holdsBefore: before.held.length,
			shed: load.shed - shed0, timeline: a.timeline, faultMs: fault.faultEnd - fault.faultStart, scenarioMs: Date.now() - t0,
			notes, misses, result: misses.length ? "FAIL" : "pass",
		};
		rows.push(row);
		console.log(`[faults] ${name}: ${row.result} — ${row.requests} opens, ${row.errors} errors (${fmtKinds(row.errorsByKind)}), max recovery ${row.maxRecoveryMs === null ? "never" : fmtS(row.maxRecoveryMs)}, ${row.unlocks} unlocks\n  failed/sent per second: ${row.timeline}\n  ${[...notes, ...misses].join("\n  ")}`);
		expect({ scenario: name, misses }).toEqual({ scenario: name, misses: [] });
	}

	for (const name of selected) {
		it(`${name}: ${scenarios[name].title}`, async () => {
			const t0 = Date.now();
			try {
				await runScenario(name);
			} catch (err) {
				// A scenario that could not run to its end still gets its row.
				if (!rows.some(r => r.scenario === name)) rows.push(brokenRow(name, err, Date.now() - t0));
				throw err;
			}
		}, 420_000);
	}
});

function brokenRow(scenario: string, err: unknown, scenarioMs: number): Row {
	const message = `the scenario did not run to its end: ${String((err as Error)?.message ?? err).split("\n")[0].slice(0, 300)}`;
	return {
		scenario, touched: "?", excluded: 0, requests: 0, ok: 0, errors: 0, errorsByKind: {}, outsideErrors: 0, outsideByKind: {}, outsideExamples: [],
		recoveryGoalMs: RECOVERY_GOAL_MS, maxRecoveryMs: null, recoveryMs: {}, withinGoal: "?", unlocks: 0, doubleUnlocks: [], stateMismatches: [], lostHolds: [],
		holdsBefore: 0, shed: 0, timeline: "", faultMs: 0, scenarioMs, notes: [], misses: [message], result: "FAIL",
	};
}

function fmtS(ms: number): string {
	return `${(ms / 1000).toFixed(1)}s`;
}

function report(rows: Row[], totalMs: number, startError: unknown): void {
	const table = formatTable(
		[
			{ title: "scenario" }, { title: "touched" }, { title: "opens", align: "right" }, { title: "errors", align: "right" }, { title: "error kinds" },
			{ title: "outside", align: "right" }, { title: "max recovery", align: "right" }, { title: "in goal", align: "right" }, { title: "unlocks", align: "right" },
			{ title: "2× unlocks", align: "right" }, { title: "state diffs", align: "right" }, { title: "lost holds", align: "right" }, { title: "result" },
		],
		rows.map(r => [
			r.scenario, r.excluded ? `${r.touched} (${r.excluded} broken before)` : r.touched, String(r.requests), String(r.errors), fmtKinds(r.errorsByKind),
			String(r.outsideErrors), r.maxRecoveryMs === null ? "never" : fmtS(r.maxRecoveryMs), `${r.withinGoal} ≤${r.recoveryGoalMs / 1000}s`, String(r.unlocks),
			String(r.doubleUnlocks.length), String(r.stateMismatches.length), `${r.lostHolds.length}/${r.holdsBefore}`, r.result,
		]),
	);
	const text = `\nFault suite (${FLEET.cabinets} cabinets, ${FLEET.rate} opens/s through REST), ${(totalMs / 1000).toFixed(0)} s in all${startError ? `; the platform did not start: ${String(startError).slice(0, 300)}` : ""}\n${table}\n`;
	const failed = rows.filter(r => r.misses.length).map(r => `  ${r.scenario}:\n${r.misses.map(m => `    - ${m.split("\n")[0]}`).join("\n")}`);
	process.stdout.write(failed.length ? `${text}Goals missed:\n${failed.join("\n")}\n` : text);
	fs.mkdirSync(RESULTS_DIR, { recursive: true });
	const file = path.join(RESULTS_DIR, "faults.json");
	fs.writeFileSync(file, JSON.stringify({
		date: new Date().toISOString(), totalMs, fleet: FLEET,
		goals: { MAX_DOUBLE_UNLOCKS, MAX_FAILURES_OUTSIDE_FAULT, KILLED_DOORS_RECOVERY_MS, RECOVERY_GOAL_MS, MAX_STATE_MISMATCHES, MAX_LOST_HOLDS },
		pacing: { OUTAGE_MS, KILL_DOWN_MS, PRE_FAULT_MS, RECOVERY_WAIT_MS, POST_RECOVERY_MS, JOIN_OBSERVE_MS, SETTLE_MAX_MS, STATE_SETTLE_MS },
		startError: startError ? String(startError) : undefined, rows,
	}, null, "\t") + "\n");
	process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
}
