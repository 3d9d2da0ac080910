/**
 * hardware: the MQTT link between the cabinets and the door actors.
 *
 * - Embedded (MQTT_URL unset): runs the aedes broker on MQTT_PORT with the
 *   platform's device authentication and topic ACLs.
 * - Distributed (MQTT_URL set, EMQX in docker-compose): connects to that broker
 *   with a shared subscription, so several hardware nodes split the inbound
 *   traffic, and answers EMQX's HTTP authentication/authorization hooks
 *   (mqttAuth, mqttAcl; routed by the gateway under /api/v1/internal/mqtt/).
 *
 * Every inbound cabinet message is checked (malformed ones are counted and
 * dropped, never thrown) and handed to the door actors of its cabinet, in
 * arrival order per cabinet; the actors apply (boot, seq) ordering.
 */
import type { Context, ServiceBroker, ServiceSchema, ServiceSettingSchema } from "moleculer";
import mqtt, { type MqttClient } from "mqtt";
import type { Socket } from "node:net";
import type { Config } from "../config";
import { callDoors } from "../lib/door-client";
import { CABINET_PUBLISHES, MAX_PAYLOAD_BYTES, parseTopic, TOPIC_ROOT, type CabinetTopic } from "../domain/protocol";
import type { ReportAnswer } from "../domain/doors";
import { unauthorized } from "../types/errors";
import { LogLimiter } from "../lib/log-limiter";
import { KeyedQueue } from "../lib/key-queue";
import { startEmbeddedBroker, type DenialReason, type EmbeddedBroker } from "./hardware/embedded-broker";
import { BUSINESS_METRICS, meters, type Meter } from "../lib/business-metrics";
import { authenticateMqtt, authorizeMqtt, type AccessDeps, type MqttIdentity } from "./hardware/mqtt-access";
import { kickEmqxClient } from "./hardware/emqx-admin";
import { dependsOn } from "../lib/wait-for-services";

/** A report to a node that does not answer must not hold up the cabinet's next messages for long. */
const REPORT_TIMEOUT_MS = 2000;
/** Messages of one cabinet waiting to be delivered; more are dropped (a resync asks for the full state). */
const MAX_QUEUED_PER_CABINET = 32;
/** Cabinets whose reports were lost are asked for a full state this often, this many at a time. */
const RESYNC_EVERY_MS = 2000;
const RESYNC_BATCH = 200;
const MAX_UNSYNCED = 100_000;
/** Inbound messages not handed to the door actors → the dropped-messages metric's reason. */
const DROP_REASONS = { malformed: "malformed", failed: "undeliverable", ignored: "unknown_topic", dropped: "queue_full" } as const;
/** Denied MQTT clients: one warning per client (or address) per minute at most, for this many at once. */
const DENIAL_LOG = { intervalMs: 60_000, maxKeys: 1000 };

interface Settings extends ServiceSettingSchema {}

interface Methods {
	accessDeps(): AccessDeps;
	onMessage(topic: string, payload: Buffer): void;
	count(kind: string, result: "routed" | "malformed" | "failed" | "ignored" | "dropped"): void;
	denied(reason: DenialReason): void;
	resync(): Promise<void>;
	checkReady(): void;
}

interface Vars {
	embedded?: EmbeddedBroker;
	client?: MqttClient;
	/** Per cabinet: its messages in flight, in arrival order. */
	reports: KeyedQueue;
	/** Cabinets with a report that could not be delivered: their owner must ask them for a full state. */
	unsynced: Set<string>;
	resyncTimer?: NodeJS.Timeout;
	resyncing?: Promise<void>;
	counts: Record<string, number>;
	denials: LogLimiter;
	metrics: { connections: Meter; refused: Meter; dropped: Meter; bridgeUp: Meter };
}

type This = Vars & Methods & { broker: ServiceBroker; logger: any };

interface HookMeta {
	mqttHook?: boolean;
}

export function createHardwareService(config: Config): ServiceSchema<Settings, Methods, Vars> {
	const hookGuard = (ctx: Context<unknown, HookMeta>) => {
		if (!ctx.meta.mqttHook) throw unauthorized("MQTT hooks need the hook secret");
	};
	return {
		name: "hardware",
		mixins: [dependsOn(["merchants"])],

		actions: {
			/** EMQX HTTP authentication hook: {clientid, username, password} → {result, is_superuser}. */
			mqttAuth: {
				// Published: called by the gateway's hook route (guarded by the hook secret), never by users.
				visibility: "published",
				params: { clientid: { type: "string", max: 200 }, username: { type: "string", max: 200, optional: true }, password: { type: "string", max: 400, optional: true } },
				async handler(this: This, ctx: Context<{ clientid: string; username?: string; password?: string }, HookMeta>) {
					hookGuard(ctx);
					const who = await authenticateMqtt({ clientId: ctx.params.clientid, username: ctx.params.username, password: ctx.params.password }, this.accessDeps());
					if (!who) {
						this.count("connect", "failed");
						this.denied("bad_credentials");
					}
					return who ? { result: "allow", is_superuser: who.kind === "platform" } : { result: "deny", is_superuser: false };
				},
			},

			/** EMQX HTTP authorization hook: {clientid, username, topic, action} → {result}. */
			mqttAcl: {
				// Published: called by the gateway's hook route (guarded by the hook secret), never by users.
				visibility: "published",
				params: {
					clientid: { type: "string", max: 200 }, username: { type: "string", max: 200, optional: true },
					topic: { type: "string", max: 500 }, action: { type: "enum", values: ["publish", "subscribe", "all"] },
				},
				async handler(this: This, ctx: Context<{ clientid: string; username?: string; topic: string; action: string }, HookMeta>) {
					hookGuard(ctx);
					const { username, clientid, topic, action } = ctx.params;
					// The broker authenticated this client; its identity follows from the username.
					let who: MqttIdentity | null = null;
					if (username === config.mqtt.username) who = { kind: "platform" };
					else if (username && username === clientid) who = { kind: "cabinet", cabinetId: username };
					const allowed = !!who && action !== "all" && authorizeMqtt(who, action as "publish" | "subscribe", topic);
					if (!allowed) this.denied(action === "subscribe" ? "denied_subscribe" : "denied_publish");
					return { result: allowed ? "allow" : "deny" };
				},
			},

			/** Where the platform's own clients connect (the embedded broker's port may be chosen by the OS). */
			endpoint: {
				visibility: "public",
				handler(this: This) {
					return { url: config.mqttUrl ?? `mqtt://127.0.0.1:${this.embedded?.port ?? config.mqttPort}` };
				},
			},

			stats: {
				visibility: "public",
				handler(this: This) {
					return {
						nodeID: this.broker.nodeID, connected: !!this.client?.connected, embedded: !!this.embedded, messages: { ...this.counts },
						broker: this.embedded?.stats(),
					};
				},
			},
		},

		events: {
			/** A rotated secret ends the cabinet's current session (it must reconnect with the new one). */
			async "merchants.cabinet.credentialsRotated"(this: This, ctx: Context<{ cabinetId: string }>) {
				const id = ctx.params.cabinetId;
				if (this.embedded) {
					if (this.embedded.kick(id)) this.logger.info(`Disconnected cabinet ${id}: credentials rotated`);
				} else if (config.mqtt.emqxApi) {
					await kickEmqxClient(config.mqtt.emqxApi, id).then(
						() => this.logger.info(`Asked EMQX to disconnect cabinet ${id}: credentials rotated`),
						(err: Error) => this.logger.warn(`Could not disconnect cabinet ${id} on EMQX: ${err.message}`),
					);
				} else {
					this.logger.warn(`Cabinet ${id}: credentials rotated, but without EMQX_API_URL its current session stays until it reconnects`);
				}
			},
		},

		methods: {
			/** /ready: the embedded broker listening, or the link to the external broker up. */
			checkReady(this: This) {
				if (this.embedded) {
					if (!this.embedded.listening) throw new Error("the embedded MQTT broker is not listening");
				} else if (!this.client?.connected) throw new Error(`not connected to the MQTT broker${config.mqttUrl ? "" : " (not started)"}`);
			},

			accessDeps(this: This): AccessDeps {
				return {
					platform: { username: config.mqtt.username, password: config.mqtt.password },
					verifyCabinet: async (cabinetId, password) => {
						const r = await this.broker.call<{ ok: boolean }, unknown>("merchants.verifyCabinet", { username: cabinetId, password });
						return r.ok;
					},
				};
			},

			/** Asks the owners of cabinets whose reports were lost to query them (the cabinet answers with a full state). */
			async resync(this: This) {
				const batch = [...this.unsynced].slice(0, RESYNC_BATCH);
				await Promise.all(batch.map(cabinetId =>
					callDoors(this.broker, this.broker, "resync", { cabinetId }, cabinetId, { timeout: REPORT_TIMEOUT_MS }).then(
						() => this.unsynced.delete(cabinetId),
						(err: any) => {
							if (err?.type === "NOT_FOUND") this.unsynced.delete(cabinetId); // not ours to ask
						}, // otherwise still unreachable: next round
					),
				));
			},

			count(this: This, kind: string, result: "routed" | keyof typeof DROP_REASONS) {
				const key = `${kind}.${result}`;
				this.counts[key] = (this.counts[key] ?? 0) + 1;
				this.broker.metrics?.increment("hardware.messages", { kind, result });
				// A refused connection (EMQX's hook) is counted by `denied`, not as a message.
				if (result !== "routed" && kind !== "connect") this.metrics.dropped.inc({ reason: DROP_REASONS[result] });
			},

			/** A connection refused or closed, or a packet refused, by the embedded broker or EMQX's hooks. */
			denied(this: This, reason: DenialReason) {
				if (reason === "denied_publish" || reason === "denied_subscribe") this.metrics.dropped.inc({ reason });
				else this.metrics.refused.inc({ reason });
			},

			onMessage(this: This, topic: string, payload: Buffer) {
				const t = parseTopic(topic);
				if (!t || t.kind === "cmd") return this.count("unknown", "ignored");
				const kind = t.kind as CabinetTopic;
				// Parsed once, by the door actors' node, which answers whether it was malformed; only
				// what no parser would take is dropped here (it would not even fit a mesh message).
				if (payload.length > MAX_PAYLOAD_BYTES) return this.count(kind, "malformed");
				const text = payload.toString("utf8");
				const lost = () => {
					if (this.unsynced.size < MAX_UNSYNCED) this.unsynced.add(t.cabinetId);
				};
				const deliver = () =>
					callDoors<ReportAnswer>(this.broker, this.broker, "report", { cabinetId: t.cabinetId, kind, payload: text }, t.cabinetId, { timeout: REPORT_TIMEOUT_MS }).then(
						r => this.count(kind, !r.applied && r.dropped === "malformed" ? "malformed" : "routed"),
						(err: Error) => {
							this.count(kind, "failed");
							lost();
							this.logger.debug(`Cabinet ${t.cabinetId} ${kind} not delivered: ${err.message}`);
						},
					);
				// An ack answers one command by its cmdId, whatever came before it: it must not wait behind
				// the cabinet's other reports (its command's deadline is running). The rest keep their order.
				if (kind === "ack") return void deliver();
				if (this.reports.size(t.cabinetId) >= MAX_QUEUED_PER_CABINET) {
					// Its owner is not keeping up (or unreachable): the full state will be asked for instead.
					this.count(kind, "dropped");
					return lost();
				}
				void this.reports.run(t.cabinetId, deliver);
			},
		},

		created(this: This) {
			this.reports = new KeyedQueue();
			this.unsynced = new Set();
			this.counts = {};
			this.denials = new LogLimiter(DENIAL_LOG);
			this.broker.metrics?.register({ type: "counter", name: "hardware.messages", labelNames: ["kind", "result"], description: "Cabinet MQTT messages by outcome" });
			this.metrics = meters(this.broker, {
				connections: BUSINESS_METRICS.mqttConnections, refused: BUSINESS_METRICS.mqttRefused, dropped: BUSINESS_METRICS.mqttDropped, bridgeUp: BUSINESS_METRICS.mqttBridgeUp,
			});
			if (!config.mqttUrl) for (const kind of ["cabinet", "platform"]) this.metrics.connections.bind({ kind });
		},

		async started(this: This) {
			this.resyncTimer = setInterval(() => {
				if (this.resyncing || !this.unsynced.size) return;
				this.resyncing = this.resync().finally(() => (this.resyncing = undefined));
			}, RESYNC_EVERY_MS);
			if (!config.mqttUrl) {
				this.embedded = await startEmbeddedBroker({
					port: config.mqttPort,
					limits: config.mqtt.limits,
					authenticate: (clientId, username, password) => authenticateMqtt({ clientId, username, password }, this.accessDeps()),
					// Warn, so an operator sees an attack, but rate-limited per client, so it cannot flood the log.
					onDenied: (what, key, reason) => {
						this.denied(reason);
						const due = this.denials.note(key);
						if (due) this.logger.warn(`MQTT denied: ${what}${due.suppressed ? ` (and ${due.suppressed} more for ${key} since the last such line)` : ""}`);
					},
					onClient: (kind, delta) => this.metrics.connections.inc({ kind }, delta),
				}).catch((err: NodeJS.ErrnoException) => {
					if (err.code !== "EADDRINUSE") throw err;
					throw new Error(`MQTT_PORT ${config.mqttPort} is already in use (another MQTT broker?): set MQTT_PORT to a free port, or MQTT_URL to use that broker`);
				});
				this.logger.info(`Embedded MQTT broker on port ${this.embedded.port}`);
			}
			const url = config.mqttUrl ?? `mqtt://127.0.0.1:${this.embedded!.port}`;
			const client = mqtt.connect(url, {
				clientId: `hardware-${this.broker.nodeID}`, username: config.mqtt.username, password: config.mqtt.password,
				clean: true, reconnectPeriod: 1000, connectTimeout: 5000,
			});
			this.client = client;
			client.on("message", (topic, payload) => this.onMessage(topic, payload));
			client.on("error", err => this.logger.warn(`MQTT (hardware): ${err.message}`));
			this.metrics.bridgeUp.set(0);
			client.on("close", () => this.metrics.bridgeUp.set(0));
			const share = config.mqttUrl ? `$share/${config.mqtt.shareGroup}/` : "";
			const filters = CABINET_PUBLISHES.map(kind => `${share}${TOPIC_ROOT}/+/${kind}`);
			let linked = false;
			client.on("connect", () => {
				(client.stream as Socket).setNoDelay?.(true);
				this.metrics.bridgeUp.set(1);
				// Back after an outage: whatever the cabinets said meanwhile is lost; their owners ask them again.
				if (linked) {
					this.logger.warn("MQTT link restored: cabinets will be asked for their state");
					this.broker.broadcast("hardware.link.restored", { nodeID: this.broker.nodeID });
				}
				linked = true;
				client.subscribe(filters, { qos: 1 }, err => err && this.logger.error(`MQTT subscribe failed: ${err.message}`));
			});
			// Embedded: the broker is ours, so wait for the link. External: EMQX asks this very
			// service (through the gateway) whether the bridge may connect, so the link comes up after
			// the service is available, and mqtt.js keeps retrying until then.
			if (this.embedded) {
				await new Promise<void>((resolve, reject) => {
					const timer = setTimeout(() => reject(new Error(`MQTT broker at ${url} did not answer within 10 s`)), 10_000);
					client.once("connect", () => {
						clearTimeout(timer);
						resolve();
					});
				});
			}
		},

		async stopped(this: This) {
			clearInterval(this.resyncTimer);
			await this.resyncing;
			await this.reports.drain();
			await this.client?.endAsync().catch(() => undefined);
			await this.embedded?.close();
		},
	};
}
