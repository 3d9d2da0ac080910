/**
 * Test support for the e2e fault suite (test/e2e/faults.test.ts): the whole
 * distributed platform as child processes on this machine's NATS, Redis and
 * Mosquitto binaries — but on instances of its own, on free ports, so the
 * suite can stop, pause and restart them — a simulated fleet on that
 * Mosquitto, steady remote opens through the REST API, and what a scenario
 * needs to judge the platform afterwards.
 *
 * - `ServerProcess`: one infrastructure server (start on a fixed port, stop,
 *   kill, SIGSTOP/SIGCONT, start again on the same port).
 * - `FaultPlatform`: the three servers, the platform nodes (api, hardware,
 *   doors ×3), a mesh client node for the platform's own actions, the fleet
 *   (registered cabinets + `SimulatedCabinet`s) and the reservations and bags
 *   the suite keeps on it.
 * - `OpenLoad`: an open-loop load generator (a fixed rate, round-robin over
 *   the cabinets' load doors), recording every request's outcome.
 * - `analyseScenario`: requests, errors, failures outside the fault, recovery
 *   time per cabinet, from those records.
 *
 * Nothing in here touches the machine's own servers (4222/6379/1883).
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import IORedis from "ioredis";
import { ServiceBroker } from "moleculer";
import { callDoors, doorsNodes } from "../../lib/door-client";
import { formatDoorId } from "../../domain/protocol";
import { canConnect } from "../../tools/bench/procs";
import { SimulatedCabinet } from "../../tools/simulator/cabinet";
import { registerCabinet, type RegisteredCabinet } from "./catalog";
import { freePort, spawnNode, waitFor, waitForHttp, type NodeProcess } from "./processes";

export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive once the race is over. */
const deadline = (ms: number) => new Promise<void>(r => setTimeout(r, ms).unref());

const ROOT = path.resolve(__dirname, "../..");
export const RESULTS_DIR = path.join(ROOT, "bench-results");

/** Every child process this module started: killed (and woken first, if paused) when the test process exits. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
	for (const p of children) {
		try {
			p.kill("SIGCONT");
			p.kill("SIGKILL");
		} catch {
			// already gone
		}
	}
});

function track(proc: ChildProcess): void {
	children.add(proc);
	proc.once("exit", () => children.delete(proc));
}

const alive = (p: ChildProcess | undefined) => !!p && p.exitCode === null && p.signalCode === null;

// ---------------------------------------------------------------------------
// Infrastructure servers

export class ServerProcess {
	private proc?: ChildProcess;
	private out = "";
	private paused = false;

	constructor(
		readonly name: string,
		readonly port: number,
		readonly url: string,
		private readonly command: string,
		private readonly args: string[],
	) {}

	get running(): boolean {
		return alive(this.proc);
	}

	output(): string {
		return this.out;
	}

	/** Starts the server (again) on its port; resolves once it accepts TCP connections. */
	async start(timeoutMs = 15_000): Promise<void> {
		if (this.running) return;
		const proc = spawn(this.command, this.args, { stdio: ["ignore", "pipe", "pipe"] });
		this.proc = proc;
		this.paused = false;
		track(proc);
		const keep = (d: Buffer) => {
			this.out += d.toString();
			if (this.out.length > 64_000) this.out = this.out.slice(-32_000);
		};
		proc.stdout!.on("data", keep);
		proc.stderr!.on("data", keep);
		this.out += `--- ${new Date().toISOString()} started ${this.command} ${this.args.join(" ")} (pid ${proc.pid})\n`;
		await waitFor(`${this.name} on port ${this.port}`, async () => {
			if (!alive(proc)) throw new Error(`${this.name} exited (${proc.exitCode ?? proc.signalCode}): ${this.out.slice(-2000)}`);
			return (await canConnect("127.0.0.1", this.port, 500)) ? true : undefined;
		}, timeoutMs, 50);
	}

	/** SIGSTOP: the process holds its sockets but answers nothing. */
	pause(): void {
		if (!this.running) throw new Error(`${this.name} is not running`);
		this.proc!.kill("SIGSTOP");
		this.paused = true;
		this.out += `--- ${new Date().toISOString()} SIGSTOP\n`;
	}

	resume(): void {
		if (!this.running || !this.paused) return;
		this.proc!.kill("SIGCONT");
		this.paused = false;
		this.out += `--- ${new Date().toISOString()} SIGCONT\n`;
	}

	/** Stops it (SIGTERM, or the signal given; SIGKILL after 5 s) and waits for the exit. */
	async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
		const proc = this.proc;
		if (!proc || !alive(proc)) return;
		const exited = new Promise<void>(resolve => proc.once("exit", () => resolve()));
		if (this.paused) this.resume();
		this.out += `--- ${new Date().toISOString()} ${signal}\n`;
		proc.kill(signal);
		const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
		await exited;
		clearTimeout(timer);
	}
}

export async function startInfra(dir: string): Promise<{ nats: ServerProcess; redis: ServerProcess; mqtt: ServerProcess }> {
	const [natsPort, redisPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
	// Mosquitto started as root drops to the user "mosquitto": the config must be readable by it.
	const confDir = path.join(dir, "mosquitto");
	fs.mkdirSync(confDir, { recursive: true, mode: 0o755 });
	fs.chmodSync(dir, 0o755);
	const conf = path.join(confDir, "mosquitto.conf");
	fs.writeFileSync(conf, [
		`listener ${mqttPort} 127.0.0.1`, "allow_anonymous true", "set_tcp_nodelay true", "persistence false",
		"log_dest stderr", "log_type error", "log_type warning", "max_queued_messages 10000", "",
	].join("\n"), { mode: 0o644 });
	const nats = new ServerProcess("nats", natsPort, `nats://127.0.0.1:${natsPort}`, "/usr/sbin/nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)]);
	const redis = new ServerProcess("redis", redisPort, `redis://127.0.0.1:${redisPort}`, "redis-server", [
		"--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no",
	]);
	const mqtt = new ServerProcess("mosquitto", mqttPort, `mqtt://127.0.0.1:${mqttPort}`, "mosquitto", ["-c", conf]);
	await Promise.all([nats.start(), redis.start(), mqtt.start()]);
	return { nats, redis, mqtt };
}

// ---------------------------------------------------------------------------
// The platform and its fleet

export interface FleetOptions {
	cabinets: number;
	/** Doors 1..loadDoors of each cabinet get the remote opens of the load. */
	loadDoors: number;
	/** The REST load: opens per second over the whole fleet. */
	rate: number;
	/** Cabinets' and platform's heartbeat. */
	heartbeatSec: number;
	doorCommandTimeoutMs: number;
	/** The simulated person closes an opened door after this long. */
	autoCloseMs: number;
	/** Simulated hardware latency of each command, ms. */
	latencyMs: [number, number];
	/** A REST request without an answer after this long counts as "client timeout". */
	clientTimeoutMs: number;
	/** The load generator sheds ticks (counted) when this many requests are in flight. */
	maxInFlight: number;
}

export interface FleetCabinet extends RegisteredCabinet {
	loadDoorIds: string[];
	/** Door with a long reservation, made once at start. */
	reservedDoorId: string;
	/** Door holding a bag (reserved, deposit opening, closed on the bag), made once at start. */
	bagDoorId: string;
	/** Door that gets a fresh reservation right before every fault. */
	freshDoorId: string;
}

/** What the suite expects a door to say: held by this order, in this state. */
export interface HeldDoor {
	doorId: string;
	cabinetId: string;
	orderId: string;
	state: string;
	kind: "reservation" | "bag" | "fresh reservation";
}

interface LiveDoor {
	id: string;
	no: number;
	state: string;
	open: boolean;
	occupied: boolean;
	orderId?: string | null;
}

interface LiveCabinet {
	id: string;
	online: boolean;
	epoch?: number;
	doors: LiveDoor[];
}

export const ADMIN_PASSWORD = "fault-suite-admin-pass-1";
const JWT_SECRET = "fault-suite-jwt-secret-0123456789abcdef0123456789";
const CABINET_SECRET_KEY = "fault-suite-cabinet-secret-key-0123456789abcdef";
const HOLD_TTL_SEC = 86_400;

export class FaultPlatform {
	readonly ns = `faults-${process.pid}`;
	readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-faults-"));
	readonly dataDir = path.join(this.dir, "data");
	nats!: ServerProcess;
	redis!: ServerProcess;
	mqtt!: ServerProcess;
	/** Current node per role name (api, hardware, doors-1, …). */
	readonly nodes = new Map<string, NodeProcess>();
	/** Every node process ever started, for the logs. */
	private readonly allNodes: NodeProcess[] = [];
	private readonly replacements = new Map<string, number>();
	apiPort = 0;
	client!: ServiceBroker;
	token = "";
	cabinets: FleetCabinet[] = [];
	readonly sims = new Map<string, SimulatedCabinet>();
	/** Reservations and bags the suite made (doorId → expectation). */
	readonly held = new Map<string, HeldDoor>();
	private freshRound = 0;

	constructor(readonly opts: FleetOptions) {
		fs.mkdirSync(this.dataDir, { recursive: true });
	}

	get apiUrl(): string {
		return `http://127.0.0.1:${this.apiPort}`;
	}

	nodeId(name: string): string {
		return `${this.ns}-${name}`;
	}

	private common(): Record<string, string> {
		return {
			TRANSPORTER: this.nats.url, REDIS_URL: this.redis.url, MQTT_URL: this.mqtt.url, NAMESPACE: this.ns, MQTT_SHARE_GROUP: `hw-${this.ns}`,
			CABINET_SECRET_KEY, JWT_SECRET, HEARTBEAT_SEC: String(this.opts.heartbeatSec), DOOR_COMMAND_TIMEOUT_MS: String(this.opts.doorCommandTimeoutMs),
			DEMO_SEED: "false", LOG_LEVEL: "warn",
		};
	}

	private roleEnv(role: "api" | "hardware" | "doors"): Record<string, string> {
		switch (role) {
			case "api":
				return {
					SERVICES: "api,users,merchants,geo", PORT: String(this.apiPort), DATA_DIR: this.dataDir,
					ADMIN_USERNAME: "admin", ADMIN_PASSWORD, ACCESS_TOKEN_TTL_SEC: "14400",
					// The load is one admin from one address, far above the per-user/per-IP budgets of real clients.
					RATE_LIMIT_IP: "100000000", RATE_LIMIT_USER: "100000000",
				};
			case "hardware":
				return { SERVICES: "hardware" };
			case "doors":
				return { SERVICES: "doors" };
		}
	}

	/** Starts a node of a role under `name` (its nodeID is `{ns}-{name}`). */
	spawn(role: "api" | "hardware" | "doors", name: string): NodeProcess {
		const node = spawnNode(name, { ...this.common(), ...this.roleEnv(role), NODE_ID: this.nodeId(name) });
		track(node.proc);
		this.nodes.set(name, node);
		this.allNodes.push(node);
		return node;
	}

	/** The next name for a replacement of a role: hardware-2, api-2, doors-4, … */
	replacementName(role: string, firstNumber: number): string {
		const n = (this.replacements.get(role) ?? firstNumber - 1) + 1;
		this.replacements.set(role, n);
		return `${role}-${n}`;
	}

	async kill9(name: string): Promise<void> {
		const node = this.nodes.get(name);
		if (!node) throw new Error(`no node ${name}`);
		await node.kill9();
		this.nodes.delete(name);
	}

	/** The name of the current node of a role (api, hardware), whatever replacement it is. */
	current(role: string): string {
		const names = [...this.nodes.keys()].filter(n => n === role || n.startsWith(`${role}-`));
		if (names.length !== 1) throw new Error(`expected one ${role} node, have ${names.join(", ") || "none"}`);
		return names[0];
	}

	nameOfNodeId(nodeID: string): string | undefined {
		return nodeID.startsWith(`${this.ns}-`) ? nodeID.slice(this.ns.length + 1) : undefined;
	}

	async waitApiReady(timeoutMs = 60_000): Promise<void> {
		const node = this.nodes.get(this.current("api"));
		await waitForHttp(`${this.apiUrl}/api/v1/ready`, s => s === 200, timeoutMs, node);
	}

	async start(): Promise<void> {
		const infra = await startInfra(this.dir);
		this.nats = infra.nats;
		this.redis = infra.redis;
		this.mqtt = infra.mqtt;
		this.apiPort = await freePort();
		this.spawn("api", "api");
		this.spawn("hardware", "hardware");
		for (const n of ["doors-1", "doors-2", "doors-3"]) this.spawn("doors", n);
		this.replacements.set("doors", 3);

		// The suite's own node on the mesh: registers the fleet, makes reservations, reads the door actors.
		// Same heartbeat timing as the platform's nodes, so it sees a dead node go when they do.
		this.client = new ServiceBroker({
			namespace: this.ns, nodeID: this.nodeId("suite"), transporter: { type: "NATS", options: { url: this.nats.url } },
			logger: false, requestTimeout: 8000, heartbeatInterval: 5, heartbeatTimeout: 15,
		});
		await this.client.start();
		await waitFor("the platform's nodes", async () => {
			for (const [name, n] of this.nodes) if (n.proc.exitCode !== null) throw new Error(`${name} exited: ${n.output().slice(-3000)}`);
			return doorsNodes(this.client).length >= 3 && this.hasService("hardware") && this.hasService("merchants") ? true : undefined;
		}, 90_000, 200);
		await this.waitApiReady(60_000);
		await this.login();

		// The fleet: doors 1..loadDoors take the load (M), then one door reserved for good (S), one
		// holding a bag (L) and one that gets a fresh reservation before every fault (S).
		const { loadDoors } = this.opts;
		const layout: RegisteredCabinet["doors"] = [
			...Array.from({ length: loadDoors }, (_, i) => ({ no: i + 1, size: "M" as const })),
			{ no: loadDoors + 1, size: "S" }, { no: loadDoors + 2, size: "L" }, { no: loadDoors + 3, size: "S" },
		];
		for (let i = 0; i < this.opts.cabinets; i++) {
			const c = await registerCabinet(this.client, layout);
			this.cabinets.push({
				...c,
				loadDoorIds: Array.from({ length: loadDoors }, (_, k) => formatDoorId(c.cabinetId, k + 1)),
				reservedDoorId: formatDoorId(c.cabinetId, loadDoors + 1),
				bagDoorId: formatDoorId(c.cabinetId, loadDoors + 2),
				freshDoorId: formatDoorId(c.cabinetId, loadDoors + 3),
			});
		}
		for (const c of this.cabinets) {
			const sim = new SimulatedCabinet({
				cabinetId: c.cabinetId, secret: c.secret, doors: c.doors, mqttUrl: this.mqtt.url, heartbeatSec: this.opts.heartbeatSec,
				autoCloseMs: this.opts.autoCloseMs, latencyMs: this.opts.latencyMs,
			});
			sim.on("error", () => undefined); // reconnects on its own (the broker is stopped on purpose)
			this.sims.set(c.cabinetId, sim);
		}
		await Promise.all([...this.sims.values()].map(s => s.start()));
		await Promise.all(this.cabinets.map(c =>
			waitFor(`cabinet ${c.cabinetId} online`, async () => ((await this.live(c.cabinetId)).online ? true : undefined), 60_000, 200)));

		// Reservations and bags that every scenario must leave known.
		await Promise.all(this.cabinets.map(async (c, i) => {
			const reservation = `keep-r-${i}`;
			await this.door("reserve", { doorId: c.reservedDoorId, orderId: reservation, ttlSec: HOLD_TTL_SEC }, c.cabinetId);
			this.held.set(c.reservedDoorId, { doorId: c.reservedDoorId, cabinetId: c.cabinetId, orderId: reservation, state: "reserved", kind: "reservation" });
			const bag = `keep-b-${i}`;
			await this.door("reserve", { doorId: c.bagDoorId, orderId: bag, ttlSec: HOLD_TTL_SEC }, c.cabinetId);
			await this.door("open", { doorId: c.bagDoorId, orderId: bag, purpose: "deposit" }, c.cabinetId);
			await waitFor(`bag in ${c.bagDoorId}`, async () =>
				((await this.door<LiveDoor>("get", { doorId: c.bagDoorId }, c.cabinetId)).state === "occupied" ? true : undefined), 20_000, 100);
			this.held.set(c.bagDoorId, { doorId: c.bagDoorId, cabinetId: c.cabinetId, orderId: bag, state: "occupied", kind: "bag" });
		}));
	}

	private hasService(name: string): boolean {
		const list = this.client.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string }[];
		return list.some(s => s.name === name);
	}

	async login(): Promise<void> {
		const token = await waitFor("admin sign-in", async () => {
			const res = await fetch(`${this.apiUrl}/api/v1/auth/login`, {
				method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ login: "admin", password: ADMIN_PASSWORD }),
			});
			const body = (await res.json().catch(() => null)) as { accessToken?: string } | null;
			if (res.status !== 200) throw new Error(`login answered ${res.status} ${JSON.stringify(body)}`);
			return body?.accessToken;
		}, 30_000, 250);
		this.token = token;
	}

	/** A door action through the platform's own client routing (the owner of the cabinet). */
	door<T = LiveDoor>(action: string, params: Record<string, unknown>, cabinetId: string): Promise<T> {
		return callDoors<T>(this.client, this.client, action, params, cabinetId, { timeout: 8000 });
	}

	/** The door actors' view of a cabinet (doors.cabinet). */
	live(cabinetId: string): Promise<LiveCabinet> {
		return this.door<LiveCabinet>("cabinet", { cabinetId }, cabinetId);
	}

	/** GET /api/v1/cabinets/:id, as staff see it. */
	async rest(cabinetId: string): Promise<LiveCabinet> {
		const res = await fetch(`${this.apiUrl}/api/v1/cabinets/${cabinetId}`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(8000) });
		const body = (await res.json().catch(() => null)) as LiveCabinet | null;
		if (res.status !== 200 || !body) throw new Error(`GET /cabinets/${cabinetId} answered ${res.status} ${JSON.stringify(body)?.slice(0, 300)}`);
		return body;
	}

	/** Live doors nodes as the suite's mesh node sees them. */
	doorsNodeIds(): string[] {
		return doorsNodes(this.client);
	}

	doorsStats(nodeID: string): Promise<{ cabinets: number }> {
		return this.client.call<{ cabinets: number }, object>("doors.stats", {}, { nodeID, timeout: 3000 });
	}

	/**
	 * Which node holds each cabinet's lease right now, read from Redis (the lease value is
	 * `{nodeID}#{process id}|{epoch}`). Cabinets without a lease are left out.
	 */
	async leaseOwners(): Promise<Map<string, string>> {
		const redis = new IORedis(this.redis.url, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 3000, lazyConnect: true });
		try {
			await redis.connect();
			const ids = this.cabinets.map(c => c.cabinetId);
			const values = await redis.mget(...ids.map(id => `${this.ns}:lease:{${id}}`));
			const out = new Map<string, string>();
			ids.forEach((id, i) => {
				const v = values[i];
				if (!v) return;
				const owner = v.includes("|") ? v.slice(0, v.indexOf("|")) : v;
				out.set(id, owner.includes("#") ? owner.slice(0, owner.lastIndexOf("#")) : owner);
			});
			return out;
		} finally {
			redis.disconnect();
		}
	}

	/** Gives every cabinet's fresh door a new reservation (the newest writes before a fault). Answers the cabinets where that failed. */
	async freshReservations(tag: string): Promise<string[]> {
		const round = ++this.freshRound;
		const failed: string[] = [];
		await Promise.all(this.cabinets.map(async (c, i) => {
			const before = this.held.get(c.freshDoorId);
			const orderId = `fresh-${tag}-${round}-${i}`;
			try {
				if (before) {
					await this.door("release", { doorId: c.freshDoorId, orderId: before.orderId }, c.cabinetId).catch(() => undefined);
					this.held.delete(c.freshDoorId);
				}
				await waitFor(`fresh reservation of ${c.freshDoorId}`, () => this.door("reserve", { doorId: c.freshDoorId, orderId, ttlSec: HOLD_TTL_SEC }, c.cabinetId), 10_000, 250);
				this.held.set(c.freshDoorId, { doorId: c.freshDoorId, cabinetId: c.cabinetId, orderId, state: "reserved", kind: "fresh reservation" });
			} catch {
				failed.push(c.cabinetId);
			}
		}));
		return failed;
	}

	/**
	 * Every door holding an order as the door actors report it now (what is "known before" a
	 * fault). Cabinets that cannot be read are listed apart.
	 */
	async snapshotHeld(cabinets: readonly string[]): Promise<{ held: HeldDoor[]; unreadable: string[] }> {
		const held: HeldDoor[] = [];
		const unreadable: string[] = [];
		await Promise.all(cabinets.map(async id => {
			try {
				const live = await this.live(id);
				for (const d of live.doors) {
					if (!d.orderId) continue;
					const ours = this.held.get(d.id);
					held.push({ doorId: d.id, cabinetId: id, orderId: d.orderId, state: d.state, kind: ours?.orderId === d.orderId ? ours.kind : "reservation" });
				}
			} catch {
				unreadable.push(id);
			}
		}));
		return { held, unreadable };
	}

	/** Suite-made holds the door actors no longer report (lost at some point, by this or an earlier scenario). */
	async lostSinceStart(cabinets: readonly string[]): Promise<string[]> {
		const lost: string[] = [];
		await Promise.all(cabinets.map(async id => {
			const live = await this.live(id).catch(() => null);
			for (const h of this.held.values()) {
				if (h.cabinetId !== id) continue;
				const d = live?.doors.find(x => x.id === h.doorId);
				if (!d || d.orderId !== h.orderId || d.state !== h.state) lost.push(h.doorId);
			}
		}));
		return lost;
	}

	/**
	 * After recovery, with the load stopped and every door closed again: does each door's
	 * platform state equal the cabinet's own (open, occupied, cabinet online), and is every hold
	 * known before still reported (by the door actors and by GET /cabinets/:id)? Polled until it
	 * holds or `timeoutMs` passes (reports and hand-overs may still be arriving); answers the
	 * differences of the last look.
	 */
	async consistency(cabinets: readonly string[], before: readonly HeldDoor[], timeoutMs: number): Promise<{ state: string[]; lost: string[]; tookMs: number }> {
		const t0 = Date.now();
		let last = { state: [] as string[], lost: [] as string[] };
		for (;;) {
			last = await this.lookOnce(cabinets, before);
			if ((!last.state.length && !last.lost.length) || Date.now() - t0 > timeoutMs) break;
			await sleep(500);
		}
		return { ...last, tookMs: Date.now() - t0 };
	}

	private async lookOnce(cabinets: readonly string[], before: readonly HeldDoor[]): Promise<{ state: string[]; lost: string[] }> {
		const state: string[] = [];
		const lost: string[] = [];
		await Promise.all(cabinets.map(async id => {
			const sim = this.sims.get(id)!;
			let live: LiveCabinet | null = null;
			try {
				live = await this.live(id);
			} catch (err: any) {
				state.push(`${id}: doors.cabinet failed (${err?.type ?? err?.code ?? ""} ${err?.message ?? err})`);
			}
			let rest: LiveCabinet | null = null;
			let restError = "";
			try {
				rest = await this.rest(id);
			} catch (err: any) {
				restError = String(err?.message ?? err);
			}
			if (live) {
				if (!live.online) state.push(`${id}: platform says offline, the cabinet is ${sim.connected ? "connected" : "disconnected"}`);
				for (const d of sim.doors.values()) {
					const p = live.doors.find(x => x.no === d.no);
					if (!p) state.push(`${formatDoorId(id, d.no)}: missing in doors.cabinet`);
					else if (p.open !== d.open || p.occupied !== d.occupied) {
						state.push(`${p.id}: platform open=${p.open} occupied=${p.occupied} (${p.state}), cabinet open=${d.open} occupied=${d.occupied}`);
					}
				}
			}
			for (const h of before) {
				if (h.cabinetId !== id) continue;
				const d = live?.doors.find(x => x.id === h.doorId);
				if (live && (!d || d.orderId !== h.orderId || d.state !== h.state)) {
					lost.push(`${h.doorId} (${h.kind} ${h.orderId}, ${h.state}): doors.cabinet says ${d ? `${d.state} for ${d.orderId ?? "nobody"}` : "no such door"}`);
					continue;
				}
				const r = rest?.doors.find(x => x.id === h.doorId);
				if (!rest) lost.push(`${h.doorId} (${h.kind} ${h.orderId}): GET /cabinets/${id} failed: ${restError.slice(0, 200)}`);
				else if (!r || (r.orderId ?? null) !== h.orderId || r.state !== h.state) {
					lost.push(`${h.doorId} (${h.kind} ${h.orderId}, ${h.state}): GET /cabinets/${id} says ${r ? `${r.state ?? "no live state"} for ${r.orderId ?? "nobody"}` : "no such door"}`);
				}
			}
		}));
		return { state: state.sort(), lost: lost.sort() };
	}

	/** Waits until no simulated door is open (the person closed it), so states can be compared. */
	async doorsClosed(timeoutMs = 10_000): Promise<void> {
		await waitFor("every simulated door closed", async () => ([...this.sims.values()].every(s => [...s.doors.values()].every(d => !d.open)) ? true : undefined), timeoutMs, 50)
			.catch(() => undefined);
	}

	unlockTotal(): number {
		let n = 0;
		for (const s of this.sims.values()) n += s.counters.unlocks;
		return n;
	}

	/** Commands ("{cabinetId}/{cmdId}") that unlocked a door more than once so far, with their unlock counts. */
	doubleUnlocks(): Map<string, number> {
		const out = new Map<string, number>();
		for (const s of this.sims.values()) for (const [cmd, n] of s.unlocksByCmd) if (n > 1) out.set(`${s.id}/${cmd}`, n);
		return out;
	}

	newLoad(): OpenLoad {
		return new OpenLoad({
			url: this.apiUrl, token: () => this.token, rate: this.opts.rate, maxInFlight: this.opts.maxInFlight, timeoutMs: this.opts.clientTimeoutMs,
			targets: this.cabinets.map(c => ({ cabinetId: c.cabinetId, doorIds: c.loadDoorIds })),
		});
	}

	/** Stops everything (also after a failed start) and keeps the logs in bench-results/faults-logs/. */
	async stop(): Promise<void> {
		await Promise.all([...this.sims.values()].map(s => Promise.race([s.stop().catch(() => undefined), deadline(3000)])));
		// A client whose transporter is gone could wait long for a goodbye.
		if (this.client) await Promise.race([this.client.stop().catch(() => undefined), deadline(5000)]);
		await Promise.all([...this.nodes.values()].map(async n => {
			const t = setTimeout(() => n.proc.kill("SIGKILL"), 10_000);
			await n.stop();
			clearTimeout(t);
		}));
		const logs = path.join(RESULTS_DIR, "faults-logs");
		fs.mkdirSync(logs, { recursive: true });
		for (const old of fs.readdirSync(logs)) fs.rmSync(path.join(logs, old), { force: true });
		for (const n of this.allNodes) fs.writeFileSync(path.join(logs, `${n.name}.log`), n.output());
		for (const s of [this.nats, this.redis, this.mqtt]) {
			if (!s) continue;
			await s.stop().catch(() => undefined);
			fs.writeFileSync(path.join(logs, `${s.name}.log`), s.output());
		}
		fs.rmSync(this.dir, { recursive: true, force: true });
	}
}

// ---------------------------------------------------------------------------
// Load

export interface OpenRecord {
	cabinetId: string;
	doorId: string;
	sentAt: number;
	doneAt: number;
	ok: boolean;
	/** "200", or "<status> <type>" for an error answer, "conn <code>" when there was none, "client timeout". */
	kind: string;
}

/**
 * Remote opens through REST at a fixed rate (open loop: a slow answer does not slow the
 * next request), round-robin over the cabinets and, within each, over its load doors.
 */
export class OpenLoad {
	readonly records: OpenRecord[] = [];
	inFlight = 0;
	shed = 0;
	private timer?: NodeJS.Timeout;
	private t0 = 0;
	private issued = 0;
	private next = 0;
	private readonly doorTurn = new Map<string, number>();

	constructor(private readonly o: {
		url: string; token: () => string; rate: number; maxInFlight: number; timeoutMs: number;
		targets: { cabinetId: string; doorIds: string[] }[];
	}) {}

	get running(): boolean {
		return !!this.timer;
	}

	start(): void {
		if (this.timer) return;
		this.t0 = Date.now();
		this.issued = 0;
		this.timer = setInterval(() => {
			const due = Math.floor(((Date.now() - this.t0) * this.o.rate) / 1000);
			while (this.issued < due) {
				this.issued++;
				this.fire();
			}
		}, 10);
	}

	/** Stops issuing and waits for the requests in flight (each ends by the client timeout). */
	async stop(): Promise<void> {
		clearInterval(this.timer);
		this.timer = undefined;
		await waitFor("load requests in flight", async () => (this.inFlight === 0 ? true : undefined), this.o.timeoutMs + 5000, 20);
	}

	private fire(): void {
		if (this.inFlight >= this.o.maxInFlight) {
			this.shed++;
			return;
		}
		const t = this.o.targets[this.next++ % this.o.targets.length];
		const k = this.doorTurn.get(t.cabinetId) ?? 0;
		this.doorTurn.set(t.cabinetId, k + 1);
		const doorId = t.doorIds[k % t.doorIds.length];
		this.inFlight++;
		void this.open(t.cabinetId, doorId).finally(() => this.inFlight--);
	}

	private async open(cabinetId: string, doorId: string): Promise<void> {
		const sentAt = Date.now();
		let ok = false;
		let kind: string;
		try {
			const res = await fetch(`${this.o.url}/api/v1/doors/${doorId}/open`, {
				method: "POST",
				headers: { authorization: `Bearer ${this.o.token()}`, "content-type": "application/json" },
				body: JSON.stringify({ reason: "fault suite" }),
				signal: AbortSignal.timeout(this.o.timeoutMs),
			});
			const text = await res.text();
			ok = res.status >= 200 && res.status < 300;
			if (ok) kind = String(res.status);
			else {
				let type = "?";
				try {
					type = (JSON.parse(text) as { type?: string }).type ?? "?";
				} catch {
					// not JSON
				}
				kind = `${res.status} ${type}`;
			}
		} catch (err: any) {
			kind = err?.name === "TimeoutError" || err?.name === "AbortError" ? "client timeout" : `conn ${err?.cause?.code ?? err?.name ?? "error"}`;
		}
		this.records.push({ cabinetId, doorId, sentAt, doneAt: Date.now(), ok, kind });
	}

	/** Cabinets with a successful open sent at or after `since`, and the first such answer's time. */
	firstSuccessSince(since: number): Map<string, number> {
		const out = new Map<string, number>();
		for (const r of this.records) {
			if (!r.ok || r.sentAt < since) continue;
			const seen = out.get(r.cabinetId);
			if (seen === undefined || r.doneAt < seen) out.set(r.cabinetId, r.doneAt);
		}
		return out;
	}

	/** Cabinets whose latest answered request since `since` succeeded, and that had one. */
	healthySince(since: number): Set<string> {
		const latest = new Map<string, OpenRecord>();
		for (const r of this.records) {
			if (r.sentAt < since) continue;
			const l = latest.get(r.cabinetId);
			if (!l || r.doneAt > l.doneAt) latest.set(r.cabinetId, r);
		}
		return new Set([...latest].filter(([, r]) => r.ok).map(([id]) => id));
	}
}

// ---------------------------------------------------------------------------
// Analysis

export interface ScenarioWindow {
	/** Start of the measured window (after the settle check). */
	start: number;
	faultStart: number;
	/** When the fault was over: the server back, the replacement node started, or the kill itself. */
	faultEnd: number;
	/** End of the measured window (the load stopped). */
	end: number;
}

export interface Analysis {
	requests: number;
	ok: number;
	errors: number;
	errorsByKind: Record<string, number>;
	/** Failures that are not the fault's: before it began, on cabinets it did not touch, or after a cabinet had recovered. */
	outside: { count: number; byKind: Record<string, number>; examples: string[] };
	/** Per touched cabinet: ms from the fault's end to its first successful open sent after it (undefined = none). */
	recovery: Map<string, number | undefined>;
	maxRecoveryMs: number | undefined;
	notRecovered: string[];
	/**
	 * Failed/all opens per second of sending, from the window's start: "0/24 0/24 [ 3/24 … ] 0/24"
	 * with "[" at the second the fault began and "]" at the second it ended.
	 */
	timeline: string;
}

const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

export function analyseScenario(records: readonly OpenRecord[], w: ScenarioWindow, touched: ReadonlySet<string>, excluded: ReadonlySet<string>): Analysis {
	const rs = records.filter(r => r.sentAt >= w.start && r.sentAt <= w.end);
	const errorsByKind: Record<string, number> = {};
	for (const r of rs) if (!r.ok) bump(errorsByKind, r.kind);
	const recoveredAt = new Map<string, number>();
	for (const r of rs) {
		if (!r.ok || r.sentAt < w.faultEnd || !touched.has(r.cabinetId)) continue;
		const seen = recoveredAt.get(r.cabinetId);
		if (seen === undefined || r.doneAt < seen) recoveredAt.set(r.cabinetId, r.doneAt);
	}
	const outside = { count: 0, byKind: {} as Record<string, number>, examples: [] as string[] };
	for (const r of rs) {
		if (r.ok || excluded.has(r.cabinetId)) continue;
		let why: string | undefined;
		if (r.doneAt <= w.faultStart) why = "before the fault";
		else if (!touched.has(r.cabinetId)) why = "untouched cabinet";
		else {
			const rec = recoveredAt.get(r.cabinetId);
			if (rec !== undefined && r.sentAt >= rec) why = "after the cabinet had recovered";
		}
		if (!why) continue;
		outside.count++;
		bump(outside.byKind, r.kind);
		if (outside.examples.length < 8) {
			outside.examples.push(`${r.doorId} ${r.kind} (${why}; sent at fault${fmtOffset(r.sentAt - w.faultStart)}, took ${r.doneAt - r.sentAt} ms)`);
		}
	}
	const recovery = new Map<string, number | undefined>();
	for (const id of touched) {
		if (excluded.has(id)) continue;
		const at = recoveredAt.get(id);
		recovery.set(id, at === undefined ? undefined : Math.max(0, at - w.faultEnd));
	}
	const times = [...recovery.values()].filter((v): v is number => v !== undefined);
	const buckets: { ok: number; err: number }[] = [];
	for (const r of rs) {
		const i = Math.floor((r.sentAt - w.start) / 1000);
		buckets[i] ??= { ok: 0, err: 0 };
		if (r.ok) buckets[i].ok++;
		else buckets[i].err++;
	}
	const faultStartSec = Math.floor((w.faultStart - w.start) / 1000);
	const faultEndSec = Math.floor((w.faultEnd - w.start) / 1000);
	const timeline = Array.from(buckets, (b, i) => {
		const cell = `${b?.err ?? 0}/${(b?.ok ?? 0) + (b?.err ?? 0)}`;
		return `${i === faultStartSec ? "[ " : ""}${cell}${i === faultEndSec ? " ]" : ""}`;
	}).join(" ");
	return {
		requests: rs.length,
		ok: rs.filter(r => r.ok).length,
		errors: rs.filter(r => !r.ok).length,
		errorsByKind,
		outside,
		recovery,
		maxRecoveryMs: times.length ? Math.max(...times) : undefined,
		notRecovered: [...recovery].filter(([, v]) => v === undefined).map(([id]) => id),
		timeline,
	};
}

export const fmtOffset = (ms: number) => `${ms >= 0 ? "+" : "−"}${(Math.abs(ms) / 1000).toFixed(1)}s`;

export const fmtKinds = (m: Record<string, number>, max = 3) => {
	const e = Object.entries(m).sort((a, b) => b[1] - a[1]);
	if (!e.length) return "-";
	const shown = e.slice(0, max).map(([k, n]) => `${n}×${k}`).join(", ");
	return e.length > max ? `${shown}, +${e.length - max} kinds` : shown;
};
