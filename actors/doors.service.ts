/**
 * doors: hosts the door actors of the cabinets this node owns (cabinet-host.ts),
 * the only writer of door state.
 *
 * - Ownership: a cabinet goes to the node placement.ts picks among the live
 *   doors nodes; the lease in the store makes it exclusive and fences a stale
 *   owner. When the node set changes, hosts this node should no longer own are
 *   handed over (their lease released) and the new owner loads them from the
 *   store on first use.
 * - Store: Redis when REDIS_URL is set (several doors nodes), else the embedded
 *   database (one node).
 * - Commands go out on this node's own MQTT connection (platform account);
 *   reports come in through the hardware service (doors.report).
 * - Durable timers: every second each node wakes the cabinets it should own
 *   that have a timer due in the store, so a reservation still expires after
 *   its owner died.
 *
 * Callers use door-client.ts `callDoors`, which routes to the owner. No retry
 * middleware: an open must never be re-sent by Moleculer.
 */
import type { Context, ServiceBroker, ServiceSchema, ServiceSettingSchema } from "moleculer";
import mqtt, { type MqttClient } from "mqtt";
import type { Socket } from "node:net";
import type IORedis from "ioredis";
import type { Config } from "../config";
import { createDbMixin } from "../mixins/db.mixin";
import type { Repository } from "../mixins/repository";
import { deriveCabinetSecret } from "../domain/cabinet-secrets";
import { SIZES, type Size } from "../domain/catalog";
import { notFound, invalid, serviceUnavailable } from "../types/errors";
import type { CabinetLiveView, CabinetsAnswer, LinksAnswer, OpenParams, ReportAnswer, ReserveAnyParams, ReserveParams } from "../domain/doors";
import { CabinetHost, DEFAULT_HOST_SETTINGS, notOwner, type CatalogCabinet, type DoorView, type HostDeps, type HostSettings } from "./cabinet-host";
import { doorsNodes, ownerToken } from "../lib/door-client";
import { DOOR_STATE_ENTITY, LocalDoorStore, RedisDoorStore, type DoorCabinetDoc, type DoorStore } from "./door-store";
import { ownerOf } from "../domain/placement";
import { LogLimiter } from "../lib/log-limiter";
import { createRedis } from "../lib/redis";
import { errorType, isUnanswered } from "../lib/mesh-errors";
import { BUSINESS_METRICS, meters, openResult, type Meter, type Series } from "../lib/business-metrics";
import { CABINET_PUBLISHES, isCabinetId, parseCabinetMessage, parseDoorId, topicOf, type CabinetTopic, type Command } from "../domain/protocol";
import { dependsOn } from "../lib/wait-for-services";

const TICK_MS = 1000;
/**
 * Each cabinet is ticked once per TICK_MS, but in TICK_SLICES turns spread over
 * it (by a hash of its id): ticking 500 cabinets at once held the event loop
 * for 25–30 ms every second, which every door open behind it waited out.
 */
const TICK_SLICES = 10;

function sliceOf(cabinetId: string): number {
	let h = 0;
	for (let i = 0; i < cabinetId.length; i++) h = (Math.imul(h, 31) + cabinetId.charCodeAt(i)) | 0;
	return (h >>> 0) % TICK_SLICES;
}
const DUE_BATCH = 200;
/** Cabinets per doors.links answer: ≈ 40 bytes each, well under NATS's 1 MB message limit. */
const LINKS_PAGE = 10_000;
/** An order's door event not acknowledged by then is delivered again later. */
const ORDERS_TIMEOUT_MS = 3000;
/** A catalog read that waits longer than this is asked again (of another merchants replica). */
const CATALOG_TIMEOUT_MS = 2000;
/** Warnings about one cabinet (lost leases, moved epochs): one line per minute at most. */
const WARNINGS = { intervalMs: 60_000, maxKeys: 10_000 };
/** How long a starting node waits for its MQTT link before it joins the mesh anyway. */
const FIRST_MQTT_CONNECT_MS = 10_000;

interface Settings extends ServiceSettingSchema {}

/** A held cabinet as doors.cabinet and doors.cabinets answer it. */
async function liveView(host: CabinetHost): Promise<CabinetLiveView> {
	return {
		id: host.id, online: host.online, lastSeenAt: host.lastSeenAt ? new Date(host.lastSeenAt).toISOString() : null,
		epoch: host.epoch, doors: await host.doors(),
	};
}

interface Methods {
	host(cabinetId: string): Promise<CabinetHost>;
	hostFor(cabinetId: string): Promise<CabinetHost>;
	queryAll(why: string): void;
	catalogOf(cabinetId: string): Promise<CatalogCabinet>;
	doorRef(doorId: string): { cabinetId: string; no: number };
	tickAll(slice: number): Promise<void>;
	rebalance(): Promise<void>;
	sendCommand(cabinetId: string, cmd: Command): Promise<void>;
	checkReady(): Promise<void>;
	countOpen(purpose: string, open: Promise<DoorView>): Promise<DoorView>;
	noteOnline(cabinetId: string, online: boolean): void;
}

interface Vars {
	store: DoorStore;
	owner: string;
	hosts: Map<string, Promise<CabinetHost>>;
	/** Cabinets being handed over right now (their lease is released at the end). */
	handingOver: Map<string, { host: CabinetHost; done: Promise<void> }>;
	mqtt?: MqttClient;
	redis?: IORedis;
	timer?: NodeJS.Timeout;
	ticking?: Promise<void>;
	/** The slice of cabinets the next tick visits. */
	nextSlice: number;
	hostSettings: HostSettings;
	repos: { door_states: Repository<DoorCabinetDoc> };
	counters: { malformed: number; unknownCabinet: number };
	warnings: LogLimiter;
	/** Online cabinets among those this node commands (a gauge; hosts leaving are taken out at the next round). */
	onlineCabinets: Set<string>;
	metrics: { opens: Meter; online: Series; openRoundTrip: Series };
}

type This = Vars & Methods & { broker: ServiceBroker; logger: any; name: string };


const doorIdParam = { type: "string", min: 6, max: 90 } as const;
const orderIdParam = { type: "string", min: 1, max: 80 } as const;
const cabinetIdParam = { type: "string", min: 5, max: 80 } as const;

export function createDoorsService(config: Config, opts: { dataDir?: string | null } = {}): ServiceSchema<Settings, Methods, Vars> {
	const dataDir = opts.dataDir === undefined ? config.dataDir : opts.dataDir;
	const hostSettings: HostSettings = {
		...DEFAULT_HOST_SETTINGS,
		heartbeatSec: config.heartbeatSec,
		commandTimeoutMs: config.doors.commandTimeoutMs,
		openTooLongMs: config.doors.openTooLongSec * 1000,
		leaseTtlMs: config.doors.leaseTtlMs,
		mailboxLimit: config.doors.mailboxLimit,
	};
	return {
		name: "doors",
		// The embedded store's collection; with Redis the state lives there and no file is opened.
		// Embedded: the MQTT broker is the local hardware service's.
		mixins: [
			...(config.redisUrl ? [] : [createDbMixin({ door_states: DOOR_STATE_ENTITY }, { mongoUri: config.mongoUri, dataDir })]),
			dependsOn(config.mqttUrl ? ["merchants"] : ["merchants", "hardware"]),
		],

		actions: {
			reserve: {
				visibility: "public",
				params: { doorId: doorIdParam, orderId: orderIdParam, ttlSec: { type: "number", integer: true, min: 10, max: 86_400, optional: true } },
				async handler(this: This, ctx: Context<ReserveParams>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					const until = Date.now() + (ctx.params.ttlSec ?? config.reservationTtlSec) * 1000;
					return (await this.hostFor(cabinetId)).reserve(no, ctx.params.orderId, until);
				},
			},

			/** A free door of the size in the cabinet, or null when there is none. */
			reserveAny: {
				visibility: "public",
				params: {
					cabinetId: cabinetIdParam, size: { type: "enum", values: [...SIZES] }, orderId: orderIdParam,
					ttlSec: { type: "number", integer: true, min: 10, max: 86_400, optional: true },
				},
				async handler(this: This, ctx: Context<ReserveAnyParams>): Promise<DoorView | null> {
					const until = Date.now() + (ctx.params.ttlSec ?? config.reservationTtlSec) * 1000;
					return (await this.hostFor(ctx.params.cabinetId)).reserveAny(ctx.params.size, ctx.params.orderId, until);
				},
			},

			release: {
				visibility: "public",
				params: { doorId: doorIdParam, orderId: orderIdParam },
				async handler(this: This, ctx: Context<{ doorId: string; orderId: string }>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					return (await this.hostFor(cabinetId)).release(no, ctx.params.orderId);
				},
			},

			/** Opens the door held by the order (deposit or pickup); answers after the cabinet acked. */
			open: {
				visibility: "public",
				timeout: config.doors.callTimeoutMs,
				params: { doorId: doorIdParam, orderId: orderIdParam, purpose: { type: "enum", values: ["deposit", "pickup"] } },
				async handler(this: This, ctx: Context<OpenParams>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					return this.countOpen(ctx.params.purpose, this.hostFor(cabinetId).then(h => h.open(no, ctx.params.purpose, ctx.params.orderId)));
				},
			},

			/** An operator's remote open (the catalog wrote the audit entry). */
			operatorOpen: {
				visibility: "public",
				timeout: config.doors.callTimeoutMs,
				params: { doorId: doorIdParam, reason: { type: "string", min: 3, max: 200 }, actorId: { type: "string", optional: true, nullable: true } },
				async handler(this: This, ctx: Context<{ doorId: string; reason: string; actorId?: string | null }>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					const door = await this.countOpen("operator", this.hostFor(cabinetId).then(h => h.open(no, "operator", null)));
					this.logger.info(`Operator open of ${door.id} by ${ctx.params.actorId ?? "the platform"}: ${ctx.params.reason}`);
					return door;
				},
			},

			setDisabled: {
				visibility: "public",
				params: { doorId: doorIdParam, disabled: "boolean" },
				async handler(this: This, ctx: Context<{ doorId: string; disabled: boolean }>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					return (await this.hostFor(cabinetId)).setDisabled(no, ctx.params.disabled);
				},
			},

			get: {
				visibility: "public",
				params: { doorId: doorIdParam },
				async handler(this: This, ctx: Context<{ doorId: string }>): Promise<DoorView> {
					const { cabinetId, no } = this.doorRef(ctx.params.doorId);
					return (await this.hostFor(cabinetId)).door(no);
				},
			},

			cabinet: {
				visibility: "public",
				params: { cabinetId: cabinetIdParam },
				async handler(this: This, ctx: Context<{ cabinetId: string }>) {
					return liveView(await this.hostFor(ctx.params.cabinetId));
				},
			},

			/**
			 * Many cabinets at once (catalog views: a page of a point's cabinets), one call per
			 * doors node instead of one per cabinet. Each cabinet answers on its own: its live view,
			 * or the error it would have thrown (NOT_OWNER with `heldBy`: ask the holder).
			 */
			cabinets: {
				visibility: "public",
				params: { cabinetIds: { type: "array", min: 1, max: 100, items: cabinetIdParam } },
				async handler(this: This, ctx: Context<{ cabinetIds: string[] }>): Promise<CabinetsAnswer> {
					const cabinets = await Promise.all([...new Set(ctx.params.cabinetIds)].map(async (id): Promise<CabinetsAnswer["cabinets"][number]> => {
						try {
							return { id, live: await liveView(await this.hostFor(id)) };
						} catch (err: any) {
							return { id, error: { type: errorType(err), message: String(err?.message ?? err), ...(err?.data?.heldBy ? { heldBy: String(err.data.heldBy) } : {}) } };
						}
					}));
					return { cabinets };
				},
			},

			/**
			 * The link state of the cabinets this node holds in memory, in id order, a page at a time
			 * (ask one node with `{ nodeID }`). A cabinet no doors node holds is not connected: its
			 * host is dropped once it is offline and idle, and a cabinet that connects is held by the
			 * node that gets its first report. Nothing is loaded or leased to answer.
			 */
			links: {
				visibility: "public",
				params: {
					after: { type: "string", max: 80, optional: true },
					limit: { type: "number", integer: true, min: 1, max: LINKS_PAGE, optional: true },
				},
				async handler(this: This, ctx: Context<{ after?: string; limit?: number }>): Promise<LinksAnswer> {
					const limit = ctx.params.limit ?? LINKS_PAGE;
					const after = ctx.params.after ?? "";
					const held = new Map<string, CabinetHost>();
					for (const { host } of this.handingOver.values()) if (host.id > after) held.set(host.id, host);
					const resolved = await Promise.all([...this.hosts].filter(([id]) => id > after).map(([, p]) => p.catch(() => null)));
					for (const h of resolved) if (h) held.set(h.id, h);
					const ids = [...held.keys()].sort();
					const page = ids.slice(0, limit);
					return {
						nodeID: this.broker.nodeID,
						cabinets: page.map(id => {
							const h = held.get(id)!;
							return [id, h.online ? 1 : 0, h.lastSeenAt] as [string, 0 | 1, number];
						}),
						next: ids.length > limit ? page[page.length - 1] : null,
					};
				},
			},

			/**
			 * A message from the cabinet (hardware service), parsed here only. Malformed ones (also an
			 * ack naming another door than its command's) and those of unknown cabinets are dropped
			 * (never thrown) and the answer says why.
			 */
			report: {
				visibility: "public",
				params: { cabinetId: cabinetIdParam, kind: { type: "enum", values: [...CABINET_PUBLISHES] }, payload: "string" },
				async handler(this: This, ctx: Context<{ cabinetId: string; kind: CabinetTopic; payload: string }>): Promise<ReportAnswer> {
					const parsed = parseCabinetMessage(ctx.params.kind, ctx.params.payload);
					if (!parsed.ok) {
						this.counters.malformed++;
						return { applied: false, dropped: "malformed" };
					}
					let host: CabinetHost;
					try {
						// A host handing over still takes the cabinet's reports: the acks of its commands in
						// flight, which the hand-over waits for, are among them. A report never waits for a
						// dying lease either: the hardware node asks for a resync later.
						host = this.handingOver.get(ctx.params.cabinetId)?.host ?? (await this.host(ctx.params.cabinetId));
					} catch (err: any) {
						if (err?.type === "NOT_FOUND") {
							this.counters.unknownCabinet++;
							return { applied: false, dropped: "unknown cabinet" };
						}
						throw err;
					}
					if ((await host.report(parsed.value)) === "malformed") {
						this.counters.malformed++;
						return { applied: false, dropped: "malformed" };
					}
					return { applied: true };
				},
			},

			/**
			 * Reports of this cabinet may have been lost (the hardware node could not deliver them):
			 * its owner asks it for a full state.
			 */
			resync: {
				visibility: "public",
				params: { cabinetId: cabinetIdParam },
				async handler(this: This, ctx: Context<{ cabinetId: string }>) {
					await (await this.host(ctx.params.cabinetId)).query();
					return { ok: true };
				},
			},

			/** Every door that cannot be given to a new order now (read models load it at start). */
			taken: {
				visibility: "public",
				async handler(this: This) {
					return this.store.taken();
				},
			},

			stats: {
				visibility: "public",
				async handler(this: This) {
					const hosts = await Promise.all([...this.hosts.values()].map(p => p.catch(() => null)));
					const live = hosts.filter((h): h is CabinetHost => !!h);
					return {
						nodeID: this.broker.nodeID, cabinets: live.length, online: live.filter(h => h.online).length,
						residentDoors: live.reduce((n, h) => n + h.residentDoors, 0), ...this.counters,
					};
				},
			},
		},

		events: {
			"$node.connected"(this: This) {
				void this.rebalance();
			},
			"$node.disconnected"(this: This) {
				void this.rebalance();
			},
			"$services.changed"(this: This) {
				void this.rebalance();
			},
			/** A hardware node's MQTT link came back: what cabinets said meanwhile is lost; ask them all. */
			"hardware.link.restored"(this: This) {
				this.queryAll("a hardware node's MQTT link was restored");
			},
			async "merchants.cabinet.credentialsRotated"(this: This, ctx: Context<{ cabinetId: string }>) {
				const h = this.hosts.get(ctx.params.cabinetId);
				if (!h) return;
				const host = await h.catch(() => null);
				if (!host) return;
				host.updateCatalog(await this.catalogOf(host.id));
			},
		},

		methods: {
			/** /ready: the door store answers (Redis, or the embedded database); door state lives there. */
			async checkReady(this: This) {
				if (!this.store) throw new Error("the door store is not open yet");
				if (this.redis) await this.redis.ping();
				else await this.repos.door_states.findById("ready-probe");
			},

			/** The cabinet as registered, with its signing secret derived here (it never crosses the mesh). */
			async catalogOf(this: This, id: string): Promise<CatalogCabinet> {
				// A read: when the merchants node asked does not answer (it died and the mesh does not know
				// yet), ask again, which the balancer sends to another replica.
				const ask = () => this.broker.call<any, any>("merchants.cabinetDoors", { id }, { timeout: CATALOG_TIMEOUT_MS });
				const c = await ask().catch(err => {
					if (!isUnanswered(err)) throw err;
					return ask();
				});
				return { pointId: c.pointId, merchantId: c.merchantId, doors: c.doors, secret: deriveCabinetSecret(config.cabinetSecretKey, id, c.secretNonce) };
			},

			doorRef(doorId: string) {
				const ref = parseDoorId(doorId);
				if (!ref) throw invalid([{ field: "doorId", message: "doorId must look like {cabinetId}:{no}" }]);
				return ref;
			},

			host(this: This, cabinetId: string): Promise<CabinetHost> {
				if (!isCabinetId(cabinetId)) return Promise.reject(notFound("Cabinet", { cabinetId }));
				let p = this.hosts.get(cabinetId);
				const leaving = this.handingOver.get(cabinetId)?.done;
				if (!p && leaving) {
					// Not a second host beside the one letting go (it would share the lease the first one
					// releases): after the hand-over, the node placement names takes the cabinet.
					return leaving.then(() => {
						const next = ownerOf(cabinetId, doorsNodes(this.broker));
						if (next && next !== this.broker.nodeID) throw notOwner(cabinetId, `${next}#handover`);
						return this.host(cabinetId);
					});
				}
				if (!p) {
					const deps: HostDeps = {
						store: this.store, owner: this.owner, settings: this.hostSettings, now: Date.now,
						catalog: id => this.catalogOf(id),
						send: (id, cmd) => this.sendCommand(id, cmd),
						// Read models (geo on every replica) need every state change and link change; the
						// rest (deposits, expiries, anomalies) go to one instance of each consuming service.
						emit: (event, payload) => {
							if (event === "doors.cabinet.online" || event === "doors.cabinet.offline") this.noteOnline(cabinetId, event === "doors.cabinet.online");
							void (event === "doors.state.changed" || event.startsWith("doors.cabinet.") ? this.broker.broadcast(event, payload) : this.broker.emit(event, payload));
						},
						acked: (_action, ms) => this.metrics.openRoundTrip.observe(ms),
						// Acknowledged: the event stays with the door until orders answered (it may be down now).
						toOrders: async event => {
							if (!this.broker.registry.getActionEndpoints("orders.applyDoorEvent")?.hasAvailable()) throw new Error("no orders service on the mesh");
							await this.broker.call("orders.applyDoorEvent", event, { timeout: ORDERS_TIMEOUT_MS });
						},
						lost: (host, why) => {
							deps.warn(`Cabinet ${host.id}: stopped commanding it at epoch ${host.epoch}: ${why}`);
							if (this.hosts.get(host.id) === p) this.hosts.delete(host.id);
						},
						warn: message => {
							const note = this.warnings.note(cabinetId);
							if (note) this.logger.warn(note.suppressed ? `${message} (${note.suppressed} more about this cabinet since the last line)` : message);
						},
					};
					p = CabinetHost.open(cabinetId, deps);
					this.hosts.set(cabinetId, p);
					p.catch(() => {
						if (this.hosts.get(cabinetId) === p) this.hosts.delete(cabinetId);
					});
				}
				return p;
			},

			/**
			 * The host for an operation. When another owner holds the lease but is about to let
			 * go — it missed its renewals (it died), or this node is where placement puts the
			 * cabinet now (the holder is handing it over) — waits for the lease for up to half its
			 * length rather than answering NOT_OWNER, so the first call after a failover or a
			 * rebalance succeeds. The wait happens here, outside the hosts map: reports for the
			 * cabinet never queue behind it.
			 */
			async hostFor(this: This, cabinetId: string): Promise<CabinetHost> {
				const deadline = Date.now() + this.hostSettings.leaseTtlMs / 2;
				for (;;) {
					try {
						return await this.host(cabinetId);
					} catch (err: any) {
						const left = err?.type === "NOT_OWNER" ? Number(err.data?.expiresInMs) : NaN;
						const ours = ownerOf(cabinetId, doorsNodes(this.broker)) === this.broker.nodeID;
						const worthWaiting = left >= 0 && (left <= this.hostSettings.leaseTtlMs / 2 || ours);
						if (!worthWaiting || Date.now() + Math.min(left, 250) > deadline) throw err;
						// A dying lease: sleep it out. A handing-over holder releases early: look again soon.
						await new Promise(resolve => setTimeout(resolve, Math.min(left + 50, 250)));
					}
				}
			},

			/** Asks every cabinet this node commands for a full state (reports may have been lost). */
			queryAll(this: This, why: string) {
				if (!this.hosts.size) return;
				this.logger.info(`Asking ${this.hosts.size} cabinet(s) for their state: ${why}`);
				for (const p of this.hosts.values()) void p.then(h => h.query(true)).catch(() => undefined);
			},

			async sendCommand(this: This, cabinetId: string, cmd: Command) {
				const client = this.mqtt;
				if (!client?.connected) throw serviceUnavailable("The MQTT link is down");
				await client.publishAsync(topicOf(cabinetId, "cmd"), JSON.stringify(cmd), { qos: 1, retain: false });
			},

			/**
			 * Counts a door open by its outcome. NOT_OWNER is left out: it sends the caller to the owner,
			 * whose answer is the one counted.
			 */
			async countOpen(this: This, purpose: string, open: Promise<DoorView>) {
				try {
					const door = await open;
					this.metrics.opens.inc({ purpose, result: "ok" });
					return door;
				} catch (err: any) {
					if (err?.type !== "NOT_OWNER") this.metrics.opens.inc({ purpose, result: openResult(err) });
					throw err;
				}
			},

			noteOnline(this: This, cabinetId: string, online: boolean) {
				if (online) this.onlineCabinets.add(cabinetId);
				else this.onlineCabinets.delete(cabinetId);
				this.metrics.online.set(this.onlineCabinets.size);
			},

			async tickAll(this: This, slice: number) {
				if (slice === 0) {
					// Once a round. Placement may have moved while no node event said so (a cabinet taken here by
					// a report while its placed owner was unreachable): give such cabinets back. Cabinets no longer
					// commanded here (handed over, lost, passivated) leave the online gauge.
					void this.rebalance();
					for (const id of this.onlineCabinets) if (!this.hosts.has(id) && !this.handingOver.has(id)) this.onlineCabinets.delete(id);
					this.metrics.online.set(this.onlineCabinets.size);
				}
				// A slice's cabinets at once: their Redis calls are pipelined together instead of queuing one by one.
				const turn = [...this.hosts].filter(([id]) => sliceOf(id) === slice);
				await Promise.all(turn.map(async ([id, p]) => {
					const host = await p.catch(() => null);
					if (!host) return;
					const keep = await host.tick().catch(err => {
						this.logger.warn(`Cabinet ${id} tick failed: ${err.message}`);
						return true;
					});
					if (!keep && this.hosts.get(id) === p) this.hosts.delete(id);
				}));
				// Durable timers of cabinets nobody holds in memory (e.g. their owner died), once a round.
				if (slice !== 0) return;
				const nodes = doorsNodes(this.broker);
				const due = await this.store.due(Date.now(), DUE_BATCH).catch(() => [] as string[]);
				for (const id of due) {
					if (this.hosts.has(id) || ownerOf(id, nodes) !== this.broker.nodeID) continue;
					await this.host(id).then(h => h.tick()).catch(() => undefined);
				}
			},

			/** Hands over the cabinets another node should own now. */
			async rebalance(this: This) {
				const nodes = doorsNodes(this.broker);
				if (!nodes.includes(this.broker.nodeID)) return;
				const moving = [...this.hosts].filter(([id]) => ownerOf(id, nodes) !== this.broker.nodeID);
				// All at once: each waits for its commands in flight, which must not queue behind each other.
				await Promise.all(moving.map(async ([id, p]) => {
					const host = await p.catch(() => null);
					if (this.hosts.get(id) !== p) return;
					this.hosts.delete(id);
					if (!host) return;
					const done = host.handOver(ownerOf(id, nodes)).finally(() => this.handingOver.delete(id));
					this.handingOver.set(id, { host, done });
					await done;
					this.logger.info(`Handed cabinet ${id} over to ${ownerOf(id, nodes)}`);
				}));
			},
		},

		created(this: This) {
			this.owner = ownerToken(this.broker.nodeID);
			this.hosts = new Map();
			this.handingOver = new Map();
			this.hostSettings = hostSettings;
			this.counters = { malformed: 0, unknownCabinet: 0 };
			this.warnings = new LogLimiter(WARNINGS);
			this.onlineCabinets = new Set();
			const m = meters(this.broker, { opens: BUSINESS_METRICS.doorOpens, online: BUSINESS_METRICS.cabinetsOnline, roundTrip: BUSINESS_METRICS.commandRoundTrip });
			// Shown at 0 from the start: a dashboard's rate() needs the series before the first open.
			for (const purpose of ["deposit", "pickup", "operator"]) m.opens.bind({ purpose, result: "ok" });
			this.metrics = { opens: m.opens, online: m.online.bind(), openRoundTrip: m.roundTrip.bind({ action: "open" }) };
		},

		async started(this: This) {
			if (config.redisUrl) {
				// Auto-pipelining: the writes and lease renewals of many cabinets share round trips.
				this.redis = createRedis(config.redisUrl, `doors-${this.broker.nodeID}`, { autoPipelining: true, commandTimeoutMs: 2000, logger: this.logger });
				this.store = new RedisDoorStore(this.redis, `${config.namespace}:`);
			} else {
				this.store = new LocalDoorStore(this.repos.door_states);
			}
			const url = config.mqttUrl ?? (await this.broker.call<{ url: string }, Record<string, never>>("hardware.endpoint", {})).url;
			this.mqtt = mqtt.connect(url, {
				clientId: `doors-${this.owner}`, username: config.mqtt.username, password: config.mqtt.password,
				clean: true, reconnectPeriod: 1000, connectTimeout: 5000, queueQoSZero: false,
			});
			let linked = false;
			this.mqtt.on("connect", () => {
				(this.mqtt!.stream as Socket).setNoDelay?.(true);
				// Back after a broker outage: commands sent meanwhile were lost, and their acks with them.
				if (linked) this.queryAll("this node's MQTT link was restored");
				linked = true;
			});
			this.mqtt.on("error", err => this.logger.warn(`MQTT (doors): ${err.message}`));
			// Joining the mesh without a link would draw cabinets here (placement) that this node cannot
			// command, and lose the query each new owner sends: wait for the first connection, bounded.
			const connected = await new Promise<boolean>(resolve => {
				const timer = setTimeout(() => resolve(false), FIRST_MQTT_CONNECT_MS);
				this.mqtt!.once("connect", () => {
					clearTimeout(timer);
					resolve(true);
				});
			});
			if (!connected) this.logger.warn(`MQTT (doors): not connected after ${FIRST_MQTT_CONNECT_MS / 1000} s; starting anyway, commands fail with 503 until it is`);
			this.nextSlice = 0;
			this.timer = setInterval(() => {
				if (this.ticking) return; // a slow round (Redis slow, say) delays the next slice rather than piling up
				const slice = this.nextSlice;
				this.nextSlice = (slice + 1) % TICK_SLICES;
				this.ticking = this.tickAll(slice).finally(() => (this.ticking = undefined));
			}, TICK_MS / TICK_SLICES);
		},

		async stopped(this: This) {
			clearInterval(this.timer);
			await this.ticking;
			// Let go of every cabinet, so the other nodes take over at once instead of after the lease.
			await Promise.all([...this.hosts.values()].map(p => p.then(h => h.handOver()).catch(() => undefined)));
			this.hosts.clear();
			await this.mqtt?.endAsync().catch(() => undefined);
			await this.redis?.quit().catch(() => undefined);
		},
	};
}

