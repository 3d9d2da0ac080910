/**
 * One simulated cabinet: implements the cabinet side of PROTOCOL.md exactly
 * (signature check, cmdId memory, epoch check, notAfter, retained status and
 * state, last will, heartbeats) over a real MQTT connection, and can play the
 * person at the door (close it, with or without a bag).
 *
 * It counts physical unlocks per cmdId: tests and benchmarks prove "at most
 * one unlock per command" from these counts, not from the platform's word.
 */
import crypto from "node:crypto";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import {
	CMD_MEMORY, DEFAULT_HEARTBEAT_SEC, parseCommand, topicOf, verifyCommand,
	type Ack, type AckError, type Command, type DoorEvent, type EventType, type StateReport,
} from "../../domain/protocol";

export interface SimDoor {
	no: number;
	size?: string;
	open: boolean;
	occupied: boolean;
}

export interface CabinetOptions {
	cabinetId: string;
	secret: string;
	doors: { no: number; size?: string }[];
	mqttUrl: string;
	/** Hardware latency before a command takes effect, ms [min, max]. */
	latencyMs?: [number, number];
	/** Chance that an open jams (ack JAMMED + event jammed). */
	jamRate?: number;
	heartbeatSec?: number;
	fw?: string;
	/** Plays the person: closes an opened door after this many ms (a bag goes in if it was empty, comes out if not). */
	autoCloseMs?: number;
	/** The cabinet's clock (tests move it). */
	now?: () => number;
	random?: () => number;
}

export interface CabinetCounters {
	commands: number;
	badSignature: number;
	malformed: number;
	duplicates: number;
	staleEpoch: number;
	expired: number;
	unlocks: number;
	jams: number;
}

export class SimulatedCabinet extends EventEmitter {
	readonly id: string;
	readonly doors = new Map<number, SimDoor>();
	/** Physical unlocks per cmdId: never more than 1 if the platform keeps its promise. */
	readonly unlocksByCmd = new Map<string, number>();
	readonly counters: CabinetCounters = { commands: 0, badSignature: 0, malformed: 0, duplicates: 0, staleEpoch: 0, expired: 0, unlocks: 0, jams: 0 };
	boot = "";
	private client?: MqttClient;
	private seq = 0;
	private highestEpoch = 0;
	/** The last CMD_MEMORY executed commands and their original acks. */
	private readonly executed = new Map<string, Ack>();
	private heartbeatTimer?: NodeJS.Timeout;
	private readonly timers = new Set<NodeJS.Timeout>();
	private readonly now: () => number;
	private readonly random: () => number;
	private readonly startedAt = Date.now();

	constructor(private readonly opts: CabinetOptions) {
		super();
		this.id = opts.cabinetId;
		for (const d of opts.doors) this.doors.set(d.no, { no: d.no, size: d.size, open: false, occupied: false });
		this.now = opts.now ?? Date.now;
		this.random = opts.random ?? Math.random;
	}

	get connected(): boolean {
		return !!this.client?.connected;
	}

	/** Connects (a new boot each time) and resolves once status and state are published. */
	async start(): Promise<void> {
		this.boot = `b-${crypto.randomBytes(4).toString("hex")}`;
		this.seq = 0;
		const client = mqtt.connect(this.opts.mqttUrl, {
			clientId: this.id, username: this.id, password: this.opts.secret, clean: true, reconnectPeriod: 1000, connectTimeout: 5000,
			keepalive: Math.max(5, this.opts.heartbeatSec ?? DEFAULT_HEARTBEAT_SEC),
			will: { topic: topicOf(this.id, "status"), payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
		});
		this.client = client;
		client.on("message", (_topic, payload) => this.onCommand(payload));
		client.on("connect", () => {
			(client.stream as Socket).setNoDelay?.(true);
			client.subscribe(topicOf(this.id, "cmd"), { qos: 1 }, err => {
				if (err) return this.emit("error", err);
				this.publish("status", { online: true, boot: this.boot, fw: this.opts.fw ?? "sim-1.0", doors: this.doors.size }, 1, true);
				this.publishState();
				this.emit("online");
			});
		});
		client.on("error", err => this.emit("error", err));
		const hb = (this.opts.heartbeatSec ?? DEFAULT_HEARTBEAT_SEC) * 1000;
		this.heartbeatTimer = setInterval(() => {
			if (client.connected) this.publish("heartbeat", { ts: this.now(), uptime: Math.round((Date.now() - this.startedAt) / 1000), rssi: -60 }, 0, false);
		}, hb);
		await new Promise<void>((resolve, reject) => {
			const onError = (err: Error) => {
				cleanup();
				reject(err);
			};
			const onOnline = () => {
				cleanup();
				resolve();
			};
			const cleanup = () => {
				this.off("online", onOnline);
				this.off("error", onError);
			};
			this.once("online", onOnline);
			this.once("error", onError);
		});
	}

	/** A clean stop: says offline itself. */
	async stop(): Promise<void> {
		this.clearTimers();
		const client = this.client;
		if (!client) return;
		this.client = undefined;
		// A goodbye, but not forever: a broker that does not ack it within a second gets the plain close.
		const bye = client.connected ? client.publishAsync(topicOf(this.id, "status"), '{"online":false}', { qos: 1, retain: true }).catch(() => undefined) : Promise.resolve();
		const acked = await Promise.race([bye.then(() => true), new Promise<boolean>(r => setTimeout(() => r(false), 1000).unref())]);
		await client.endAsync(!acked);
	}

	/** Power cut: the connection drops without a goodbye, so the broker publishes the last will. */
	crash(): void {
		this.clearTimers();
		const client = this.client;
		this.client = undefined;
		if (!client) return;
		(client.stream as Socket).destroy();
		client.end(true);
	}

	/** Silence: stays connected but sends nothing (not even heartbeats) and ignores commands. */
	mute(): void {
		this.clearTimers();
		this.client?.removeAllListeners("message");
	}

	/** The person closes a door, with or without a bag inside. */
	close(no: number, occupied: boolean): void {
		const door = this.doors.get(no);
		if (!door || !door.open) return;
		door.open = false;
		door.occupied = occupied;
		this.publishEvent("closed", no, { occupied });
		this.publishState();
	}

	/** Someone opens a door without a command (forced). */
	force(no: number): void {
		const door = this.doors.get(no);
		if (!door || door.open) return;
		door.open = true;
		this.publishEvent("forced_open", no);
		this.publishState();
	}

	/** Publishes a raw payload on one of this cabinet's topics (conformance tests send garbage this way). */
	raw(topic: string, payload: string | Buffer, qos: 0 | 1 = 1): Promise<unknown> {
		if (!this.client) throw new Error("not started");
		return this.client.publishAsync(topic, payload, { qos });
	}

	/** Subscribes to any topic filter (ACL tests): resolves with the granted QoS list (128 = refused). */
	async trySubscribe(filter: string): Promise<number[]> {
		if (!this.client) throw new Error("not started");
		try {
			const granted = await this.client.subscribeAsync(filter, { qos: 1 });
			return granted.map(g => g.qos);
		} catch (err: any) {
			// mqtt.js rejects a SUBACK that refuses; the codes are on the packet.
			if (Array.isArray(err?.packet?.granted)) return err.packet.granted.map((g: number | { qos: number }) => (typeof g === "number" ? g : g.qos));
			throw err;
		}
	}

	stateReport(): StateReport {
		return {
			ts: this.now(), seq: ++this.seq, boot: this.boot,
			doors: [...this.doors.values()].map(d => ({ no: d.no, open: d.open, occupied: d.occupied })),
		};
	}

	private onCommand(payload: Buffer): void {
		this.counters.commands++;
		const parsed = parseCommand(payload);
		if (!parsed.ok) {
			this.counters.malformed++;
			return;
		}
		const cmd = parsed.value;
		// 1. a bad signature is dropped silently
		if (!verifyCommand(this.opts.secret, cmd)) {
			this.counters.badSignature++;
			return;
		}
		// 2. a command executed before: the original ack again, nothing else
		const earlier = this.executed.get(cmd.cmdId);
		if (earlier) {
			this.counters.duplicates++;
			if (earlier !== PENDING) this.publish("ack", earlier, 1, false); // else its ack is on the way
			return;
		}
		// 3. stale epoch, 4. expired
		if (cmd.epoch < this.highestEpoch) {
			this.counters.staleEpoch++;
			return this.finish(cmd, { ok: false, error: "STALE_EPOCH" });
		}
		this.highestEpoch = cmd.epoch;
		if (this.now() > cmd.notAfter) {
			this.counters.expired++;
			return this.finish(cmd, { ok: false, error: "EXPIRED" });
		}
		// 5. execute (after the hardware's latency) and ack. The cmdId is remembered now, so a
		// retry arriving during the latency is not executed twice either: it gets the ack once ready.
		this.executed.set(cmd.cmdId, PENDING);
		const [min, max] = this.opts.latencyMs ?? [0, 0];
		const delay = min + Math.floor(this.random() * (max - min + 1));
		if (delay <= 0) this.execute(cmd);
		else this.later(delay, () => this.execute(cmd));
	}

	private execute(cmd: Command): void {
		if (cmd.action === "query") {
			this.publishState();
			return this.finish(cmd, { ok: true });
		}
		const door = this.doors.get(cmd.door!);
		if (!door) return this.finish(cmd, { ok: false, error: "NO_SUCH_DOOR" });
		if (this.random() < (this.opts.jamRate ?? 0)) {
			this.counters.jams++;
			this.finish(cmd, { ok: false, error: "JAMMED" });
			this.publishEvent("jammed", door.no);
			return;
		}
		this.counters.unlocks++;
		this.unlocksByCmd.set(cmd.cmdId, (this.unlocksByCmd.get(cmd.cmdId) ?? 0) + 1);
		this.finish(cmd, { ok: true });
		if (!door.open) {
			door.open = true;
			this.publishEvent("opened", door.no);
			this.publishState();
		}
		this.emit("unlocked", door.no, cmd.cmdId);
		if (this.opts.autoCloseMs !== undefined) this.later(this.opts.autoCloseMs, () => this.close(door.no, !door.occupied));
	}

	private finish(cmd: Command, result: { ok: boolean; error?: AckError }): void {
		const ack: Ack = { cmdId: cmd.cmdId, ok: result.ok, ts: this.now() };
		if (cmd.door !== undefined) ack.door = cmd.door;
		if (result.error) ack.error = result.error;
		this.executed.delete(cmd.cmdId); // re-inserted: the map keeps insertion order, oldest first
		this.executed.set(cmd.cmdId, ack);
		while (this.executed.size > CMD_MEMORY) this.executed.delete(this.executed.keys().next().value as string);
		this.publish("ack", ack, 1, false);
	}

	private publishEvent(type: EventType, door: number, extra: Partial<DoorEvent> = {}): void {
		this.publish("event", { type, door, ts: this.now(), seq: ++this.seq, ...extra }, 1, false);
	}

	private publishState(): void {
		this.publish("state", this.stateReport(), 1, true);
	}

	private publish(kind: "status" | "state" | "event" | "ack" | "heartbeat", body: unknown, qos: 0 | 1, retain: boolean): void {
		this.client?.publish(topicOf(this.id, kind), JSON.stringify(body), { qos, retain });
	}

	private later(ms: number, fn: () => void): void {
		const t = setTimeout(() => {
			this.timers.delete(t);
			fn();
		}, ms);
		this.timers.add(t);
	}

	private clearTimers(): void {
		clearInterval(this.heartbeatTimer);
		for (const t of this.timers) clearTimeout(t);
		this.timers.clear();
	}
}

/** Marks a cmdId being executed (its ack is not ready yet): a duplicate then waits for it. */
const PENDING: Ack = Object.freeze({ cmdId: "", ok: false, ts: 0 }) as Ack;
