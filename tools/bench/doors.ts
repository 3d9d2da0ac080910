/**
 * doors: remote door opens end to end, against the real Mosquitto binary of
 * this machine (our own instance, TCP no-delay, on a free port), in one run:
 *
 *   raw MQTT          request→ack round trips between two plain mqtt.js clients through
 *                     the same broker: the physical limit
 *   door opens        doors.operatorOpen (action call → actor → signed cmd → simulated
 *                     cabinet → ack → answer) with the platform in this process (merchants,
 *                     hardware, doors with Redis state) and the cabinets in a simulator process
 *
 * Both at the same concurrency, for the same time. The simulator counts
 * physical unlocks per cmdId: a run with any command unlocked twice is invalid.
 *
 * Memory: door actors for a catalog of 1 000 000 doors with 10 000 of them
 * active (loaded), then passivated.
 *
 * Results go to bench-results/doors.json.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import { monitorEventLoopDelay } from "node:perf_hooks";
import vm from "node:vm";
import type { Socket } from "node:net";
import IORedis from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../../config";
import { startNode } from "../../server";
import { CabinetHost, DEFAULT_HOST_SETTINGS, type HostDeps } from "../../actors/cabinet-host";
import { RedisDoorStore } from "../../actors/door-store";
import { formatDoorId } from "../../domain/protocol";
import { parseFlags, positiveInt, UsageError } from "./cli";
import { canConnect, freePort, machineCpuMs, Scope } from "./procs";
import { STEAL_WARN_PCT } from "./load";
import { formatTable } from "./table";
import { printGoals, writeReport, type Goal } from "./report";

export const usage = `npm run bench -- doors [options]

Door opens per second through the platform vs the raw MQTT round trip through
the same Mosquitto, then the memory of door actors.

options:
  --cabinets N      simulated cabinets (default 500)
  --doors N         doors per cabinet (default 24)
  --seconds N       measured time per target (default 10)
  --concurrency N   requests in flight (default 64)
  --redis URL       Redis for door state and leases (default redis://127.0.0.1:6379)
  --mosquitto PATH  the broker binary (default /usr/sbin/mosquitto)
  --skip-memory     leave out the memory part`;

const GOALS = { opensPerSec: 2000, p99OverRawMs: 30, bytesPerActiveDoor: 1024 };
const WARMUP_MS = 2000;

interface Timing { requests: number; errors: number; rps: number; p50Ms: number; p99Ms: number }

function summarize(lat: number[], errors: number, ms: number): Timing {
	const s = Float64Array.from(lat).sort();
	const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] : NaN);
	return { requests: lat.length, errors, rps: lat.length / (ms / 1000), p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** Runs `one` with `concurrency` in flight: warm-up, then `seconds` measured. */
async function closedLoop(concurrency: number, seconds: number, one: (worker: number) => Promise<void>): Promise<Timing> {
	let measuring = false;
	let stop = false;
	const lat: number[] = [];
	let errors = 0;
	const workers = Array.from({ length: concurrency }, async (_, w) => {
		while (!stop) {
			const t = performance.now();
			try {
				await one(w);
				if (measuring) lat.push(performance.now() - t);
			} catch {
				if (measuring) errors++;
			}
		}
	});
	await new Promise(r => setTimeout(r, WARMUP_MS));
	measuring = true;
	const t0 = performance.now();
	await new Promise(r => setTimeout(r, seconds * 1000));
	measuring = false;
	const ms = performance.now() - t0;
	stop = true;
	await Promise.all(workers);
	return summarize(lat, errors, ms);
}

/**
 * Open loop: starts `one` at a fixed rate whatever the answers do (as users
 * would), warm-up then `seconds` measured: the latency at that load, not at
 * saturation.
 */
async function openLoop(rate: number, seconds: number, one: () => Promise<void>): Promise<Timing> {
	const lat: number[] = [];
	let errors = 0;
	const inFlight = new Set<Promise<void>>();
	const total = Math.round(((WARMUP_MS / 1000) + seconds) * rate);
	const warm = Math.round((WARMUP_MS / 1000) * rate);
	const t0 = performance.now();
	let measuredFrom = 0;
	for (let i = 0; i < total; i++) {
		const due = t0 + (i * 1000) / rate;
		const wait = due - performance.now();
		if (wait > 1) await new Promise(r => setTimeout(r, wait));
		if (i === warm) measuredFrom = performance.now();
		const measured = i >= warm;
		const start = performance.now();
		const p = one().then(
			() => void (measured && lat.push(performance.now() - start)),
			() => void (measured && errors++),
		);
		inFlight.add(p);
		void p.finally(() => inFlight.delete(p));
	}
	await Promise.all(inFlight);
	return summarize(lat, errors, performance.now() - measuredFrom);
}

function connect(url: string, clientId: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
	return new Promise((resolve, reject) => {
		const c = mqtt.connect(url, { clientId, clean: true, reconnectPeriod: 0, ...extra });
		c.once("connect", () => {
			(c.stream as Socket).setNoDelay?.(true);
			resolve(c);
		});
		c.once("error", reject);
	});
}

/** Request→ack between two plain clients through the broker (QoS 1 both ways, as the platform uses). */
async function rawRoundTrips(url: string, concurrency: number, seconds: number, rate: number): Promise<{ closed: Timing; open: Timing }> {
	const responder = await connect(url, `bench-responder-${process.pid}`);
	const requester = await connect(url, `bench-requester-${process.pid}`);
	const base = `bench-raw-${process.pid}`;
	responder.on("message", (topic, payload) => responder.publish(`${base}/ack/${topic.split("/").pop()}`, payload, { qos: 1 }));
	await responder.subscribeAsync(`${base}/req/+`, { qos: 1 });
	const waiting = new Map<string, () => void>();
	requester.on("message", topic => waiting.get(topic.split("/").pop()!)?.());
	await requester.subscribeAsync(`${base}/ack/+`, { qos: 1 });
	let seq = 0;
	const roundTrip = async () => {
		const id = String(++seq);
		await new Promise<void>(resolve => {
			waiting.set(id, resolve);
			requester.publish(`${base}/req/${id}`, JSON.stringify({ cmdId: id, ts: Date.now() }), { qos: 1 });
		});
		waiting.delete(id);
	};
	const closed = await closedLoop(concurrency, seconds, roundTrip);
	const open = await openLoop(rate, seconds, roundTrip);
	await Promise.all([requester.endAsync(), responder.endAsync()]);
	return { closed, open };
}

function gcFunction(): () => void {
	v8.setFlagsFromString("--expose-gc");
	return vm.runInNewContext("gc") as () => void;
}

async function heapAfterGc(gc: () => void): Promise<number> {
	for (let i = 0; i < 3; i++) {
		gc();
		await new Promise(r => setImmediate(r));
	}
	return process.memoryUsage().heapUsed;
}

/** Door actors' heap for `active` loaded doors out of a catalog of `registered`, then after passivation. */
async function memory(redisUrl: string, registered: number, active: number, doorsPerCabinet: number) {
	const gc = gcFunction();
	const redis = new IORedis(redisUrl);
	const prefix = `bench-doors-mem-${process.pid}:`;
	const store = new RedisDoorStore(redis, prefix);
	const settings = { ...DEFAULT_HOST_SETTINGS, idleMs: 0 };
	const doors = Array.from({ length: doorsPerCabinet }, (_, i) => ({ no: i + 1, size: "M", disabled: false }));
	const deps: HostDeps = {
		store, owner: `bench#${process.pid}`, settings, now: Date.now,
		// The catalog of `registered` doors: every cabinet id answers with its doors (nothing is held for them here).
		catalog: async () => ({ pointId: "pt_bench", merchantId: "mer_bench", doors, secret: "bench-secret" }),
		send: async () => undefined,
		emit: () => undefined,
		toOrders: async () => undefined,
		lost: () => undefined,
		warn: () => undefined,
	};
	const cabinets = Math.ceil(active / doorsPerCabinet);
	const registeredCabinets = Math.ceil(registered / doorsPerCabinet);
	const before = await heapAfterGc(gc);
	const hosts: CabinetHost[] = [];
	for (let i = 0; i < cabinets; i++) {
		// Spread over the registered range: which cabinets are active does not matter.
		const id = `cab_mem${Math.floor((i * registeredCabinets) / cabinets)}`;
		const host = await CabinetHost.open(id, deps);
		await host.doors(); // loaded: every door's actor resident
		hosts.push(host);
	}
	const loaded = await heapAfterGc(gc);
	const resident = hosts.reduce((n, h) => n + h.residentDoors, 0);
	for (const h of hosts) await h.tick(); // idle and offline: passivated and released
	const passivatedResident = hosts.reduce((n, h) => n + h.residentDoors, 0);
	hosts.length = 0;
	const after = await heapAfterGc(gc);
	const keys = await redis.keys(`${prefix}*`);
	if (keys.length) await redis.del(...keys);
	await redis.quit();
	return {
		registeredDoors: registeredCabinets * doorsPerCabinet, activeDoors: resident, bytesPerActiveDoor: (loaded - before) / resident,
		passivatedResidentDoors: passivatedResident, heapAfterPassivationBytes: after - before,
	};
}

export async function main(argv: string[]): Promise<number> {
	const flags = parseFlags(argv, {
		cabinets: { type: "string" }, doors: { type: "string" }, seconds: { type: "string" }, concurrency: { type: "string" },
		redis: { type: "string" }, mosquitto: { type: "string" }, "skip-memory": { type: "boolean" },
	});
	const nCabinets = positiveInt("cabinets", flags.cabinets, 500);
	const nDoors = positiveInt("doors", flags.doors, 24);
	const seconds = positiveInt("seconds", flags.seconds, 10);
	const concurrency = positiveInt("concurrency", flags.concurrency, 64);
	const redisUrl = flags.redis ?? "redis://127.0.0.1:6379";
	const mosquitto = flags.mosquitto ?? "/usr/sbin/mosquitto";
	if (!fs.existsSync(mosquitto)) throw new UsageError(`no Mosquitto binary at ${mosquitto} (pass --mosquitto PATH)`);
	const r = new URL(redisUrl);
	if (!(await canConnect(r.hostname, Number(r.port || 6379)))) throw new Error(`no Redis at ${redisUrl}`);
	const failures: string[] = [];
	console.log(`doors benchmark: ${nCabinets} cabinets × ${nDoors} doors, ${concurrency} in flight, ${seconds} s per target; node ${process.version}`);

	const scope = new Scope();
	const dir = await scope.tempDir("bench-doors-");
	const port = await freePort();
	fs.writeFileSync(path.join(dir, "mosquitto.conf"), [
		`listener ${port} 127.0.0.1`, "allow_anonymous true", "set_tcp_nodelay true", "persistence false",
		"max_queued_messages 100000", "max_inflight_messages 0", "log_type error",
	].join("\n") + "\n");
	const broker = scope.startCommand("mosquitto", mosquitto, ["-c", path.join(dir, "mosquitto.conf")]);
	for (let i = 0; i < 100 && !(await canConnect("127.0.0.1", port)); i++) await new Promise(res => setTimeout(res, 50));
	if (broker.exit) throw new Error(`mosquitto did not start: ${broker.output()}`);
	const mqttUrl = `mqtt://127.0.0.1:${port}`;
	console.log(`mosquitto  ${mqttUrl} (set_tcp_nodelay true)`);

	console.log("raw        measuring the request→ack round trip between two plain clients…");
	// The machine's CPU over the measurements (raw and platform): on a shared VM, steal explains a slow run.
	const cpuAt = { t: process.hrtime.bigint(), ...machineCpuMs() };
	const raw = await rawRoundTrips(mqttUrl, concurrency, seconds, GOALS.opensPerSec);

	// The platform: catalog, MQTT bridge and door actors in this process; door state in Redis.
	const namespace = `bench-doors-${process.pid}`;
	const config = loadConfig({
		NODE_ENV: "test", PORT: "0", LOG_LEVEL: "warn", METRICS: "false", DEMO_SEED: "false", NAMESPACE: namespace,
		MQTT_URL: mqttUrl, REDIS_URL: redisUrl,
	}) as ReturnType<typeof loadConfig>;
	const node = await startNode({ ...config, services: ["merchants", "hardware", "doors"] }, { dataDir: null });
	console.log(`platform   registering ${nCabinets} cabinets…`);
	const city = await node.broker.call<any, any>("merchants.createCity", { code: "BENCH", name: "压测城", lat: 31.2, lng: 121.4 });
	const merchant = await node.broker.call<any, any>("merchants.createMerchant", { name: "压测商户", contactPhone: "+86 21 5555 0000", commissionRate: 0.1 });
	const layout = Array.from({ length: nDoors }, (_, i) => ({ no: i + 1, size: (["S", "M", "L"] as const)[i % 3] }));
	const credentials: string[] = [];
	const doorIds: string[] = [];
	for (let i = 0; i < nCabinets; i++) {
		const point = await node.broker.call<any, any>("merchants.createPoint", {
			merchantId: merchant.id, cityCode: city.code, name: `压测点${i}`, address: "压测路", lat: 31.2 + (i % 100) * 0.001, lng: 121.4 + Math.floor(i / 100) * 0.001,
		});
		const reg = await node.broker.call<any, any>("merchants.registerCabinet", { pointId: point.id, doors: layout });
		credentials.push(JSON.stringify({ username: reg.credentials.username, password: reg.credentials.password, doors: layout }));
		for (const d of layout) doorIds.push(formatDoorId(reg.cabinet.id, d.no));
	}
	const credFile = path.join(dir, "credentials.jsonl");
	fs.writeFileSync(credFile, credentials.join("\n") + "\n");
	const report = path.join(dir, "unlocks.json");
	const sim = scope.startTs("simulator", "tools/simulate.ts", { DATA_DIR: dir }, [
		"--credentials", credFile, "--mqtt", mqttUrl, "--auto-close", "0", "--heartbeat", "30", "--report", report,
	]);
	console.log(`simulator  starting ${nCabinets} cabinets…`);
	for (let i = 0; ; i++) {
		const s = await node.broker.call<any, object>("doors.stats", {});
		if (s.online >= nCabinets) break;
		if (sim.exit || i > 1200) throw new Error(`the cabinets did not come online (${s.online}/${nCabinets}): ${sim.output()}`);
		await new Promise(res => setTimeout(res, 100));
	}

	console.log("doors      measuring doors.operatorOpen (action → signed cmd → ack)…");
	const busy = new Set<string>();
	const openOne = async () => {
		let doorId: string;
		do doorId = doorIds[Math.floor(Math.random() * doorIds.length)];
		while (busy.has(doorId));
		busy.add(doorId);
		try {
			await node.broker.call("doors.operatorOpen", { doorId, reason: "benchmark" });
		} finally {
			busy.delete(doorId);
		}
	};
	const opens = await closedLoop(concurrency, seconds, openOne);
	console.log(`doors      the same at a steady ${GOALS.opensPerSec} opens/s (open loop)…`);
	const loopDelay = monitorEventLoopDelay({ resolution: 5 });
	loopDelay.enable();
	const opensAtGoal = await openLoop(GOALS.opensPerSec, seconds, openOne);
	loopDelay.disable();
	console.log(`           event loop delay of the platform process: p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`);

	const wallMs = Number(process.hrtime.bigint() - cpuAt.t) / 1e6;
	const cpuNow = machineCpuMs();
	const machine = { busyPct: Math.round(((cpuNow.busy - cpuAt.busy) / wallMs) * 100), stealPct: Math.round(((cpuNow.steal - cpuAt.steal) / wallMs) * 100) };
	await sim.stop(); // SIGTERM: the simulator writes its unlock report
	let twice = -1;
	let commands = 0;
	if (fs.existsSync(report)) {
		const rep = JSON.parse(fs.readFileSync(report, "utf8"));
		twice = rep.twice.length;
		commands = Object.keys(rep.unlocks).length;
	} else failures.push("the simulator wrote no unlock report");
	if (twice > 0) failures.push(`${twice} commands unlocked a door more than once`);
	for (const t of [opens, opensAtGoal]) if (t.errors > t.requests * 0.01) failures.push(`${t.errors} door opens failed`);
	await node.stop();

	const rows = [
		["raw MQTT request→ack", `${concurrency} in flight`, raw.closed],
		["door open end to end", `${concurrency} in flight`, opens],
		["raw MQTT request→ack", `${GOALS.opensPerSec}/s steady`, raw.open],
		["door open end to end", `${GOALS.opensPerSec}/s steady`, opensAtGoal],
	] as const;
	console.log("\n" + formatTable(
		[{ title: "target" }, { title: "load" }, { title: "requests/s", align: "right" }, { title: "p50 ms", align: "right" }, { title: "p99 ms", align: "right" }, { title: "errors", align: "right" }],
		rows.map(([name, load, t]) => [name, load, t.rps.toFixed(0), t.p50Ms.toFixed(2), t.p99Ms.toFixed(2), String(t.errors)]),
	));
	console.log(`unlocks: ${commands} commands executed by the cabinets, ${Math.max(0, twice)} unlocked more than once`);
	console.log(`machine during the measurements (% of one core; it has ${os.cpus().length * 100} %): busy ${machine.busyPct} %, steal ${machine.stealPct} %` +
		(machine.stealPct > STEAL_WARN_PCT ? " (the hypervisor took CPU from this machine: figures are low)" : ""));

	let mem: Awaited<ReturnType<typeof memory>> | undefined;
	if (!flags["skip-memory"]) {
		console.log("\nmemory     1 000 000 registered doors, 10 000 active…");
		mem = await memory(redisUrl, 1_000_000, 10_000, 24);
		console.log(formatTable([{ title: "door actors" }, { title: "value", align: "right" }], [
			["registered doors (catalog)", mem.registeredDoors.toLocaleString("en")],
			["active doors (resident)", mem.activeDoors.toLocaleString("en")],
			["heap per active door", `${mem.bytesPerActiveDoor.toFixed(0)} B`],
			["resident doors after passivation", String(mem.passivatedResidentDoors)],
			["heap left after passivation", `${(mem.heapAfterPassivationBytes / 1024).toFixed(0)} KB`],
		]));
	}
	await scope.close();

	const goals: Goal[] = [
		{ goal: `door opens ≥ ${GOALS.opensPerSec}/s`, pass: opens.rps >= GOALS.opensPerSec, value: `${opens.rps.toFixed(0)}/s` },
		{ goal: `door open p99 ≤ raw p99 + ${GOALS.p99OverRawMs} ms, ${concurrency} in flight (saturated)`, pass: opens.p99Ms <= raw.closed.p99Ms + GOALS.p99OverRawMs, value: `${opens.p99Ms.toFixed(1)} ms vs raw ${raw.closed.p99Ms.toFixed(1)} ms` },
		{ goal: `door open p99 ≤ raw p99 + ${GOALS.p99OverRawMs} ms at ${GOALS.opensPerSec} opens/s`, pass: opensAtGoal.p99Ms <= raw.open.p99Ms + GOALS.p99OverRawMs, value: `${opensAtGoal.p99Ms.toFixed(1)} ms vs raw ${raw.open.p99Ms.toFixed(1)} ms` },
		{ goal: "at most one unlock per command", pass: twice === 0, value: `${Math.max(0, twice)} commands unlocked twice` },
	];
	if (mem) {
		goals.push({ goal: `heap per active door ≤ ${GOALS.bytesPerActiveDoor} B`, pass: mem.bytesPerActiveDoor <= GOALS.bytesPerActiveDoor, value: `${mem.bytesPerActiveDoor.toFixed(0)} B` });
		goals.push({ goal: "passivated doors hold nothing resident", pass: mem.passivatedResidentDoors === 0, value: `${mem.passivatedResidentDoors} resident` });
	}
	printGoals("goals", goals);
	return writeReport("doors", {
		parameters: { cabinets: nCabinets, doorsPerCabinet: nDoors, seconds, concurrency, warmupMs: WARMUP_MS, broker: "mosquitto (own instance, set_tcp_nodelay true)", store: "redis" },
		results: { raw, opens, opensAtGoal, unlocks: { commands, twice }, machine, memory: mem },
		goals,
		failures,
	});
}
