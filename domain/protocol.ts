/**
 * The cabinet ⇄ platform MQTT protocol v1 (../shared/PROTOCOL.md), both sides:
 * topics, access control, command signatures and strict parsing of every
 * payload. Pure: the hardware service, the door actors and the simulator all
 * use this one file, so they cannot drift apart.
 *
 * Parsers never throw: a payload is either a typed message or a reason it was
 * refused (counted by the caller). Unknown fields are ignored, as the protocol
 * asks of both sides.
 */
import crypto from "node:crypto";

export const TOPIC_ROOT = "lockers";
/** What a cabinet may publish (PROTOCOL.md "Access control"). */
export const CABINET_PUBLISHES = ["status", "state", "event", "ack", "heartbeat"] as const;
export type CabinetTopic = (typeof CABINET_PUBLISHES)[number];
export type TopicKind = CabinetTopic | "cmd";

export const ACK_ERRORS = ["JAMMED", "NO_SUCH_DOOR", "STALE_EPOCH", "EXPIRED", "BUSY", "HARDWARE_FAULT"] as const;
export type AckError = (typeof ACK_ERRORS)[number];
export const EVENT_TYPES = ["opened", "closed", "forced_open", "jammed", "tamper", "power_loss", "sensor_fault"] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export const DEFAULT_HEARTBEAT_SEC = 30;
/** The cabinet remembers at least this many executed cmdIds. */
export const CMD_MEMORY = 64;

export const topicOf = (cabinetId: string, kind: TopicKind) => `${TOPIC_ROOT}/${cabinetId}/${kind}`;

/** Cabinet ids as the platform issues them; anything else in a topic is refused. */
const CABINET_ID = /^cab_[A-Za-z0-9_-]{1,64}$/;
export const isCabinetId = (id: string) => CABINET_ID.test(id);

export function parseTopic(topic: string): { cabinetId: string; kind: TopicKind } | null {
	const parts = topic.split("/");
	if (parts.length !== 3 || parts[0] !== TOPIC_ROOT || !isCabinetId(parts[1])) return null;
	const kind = parts[2] as TopicKind;
	return kind === "cmd" || (CABINET_PUBLISHES as readonly string[]).includes(kind) ? { cabinetId: parts[1], kind } : null;
}

/** A cabinet may publish only to its own status/state/event/ack/heartbeat topics. */
export function cabinetMayPublish(cabinetId: string, topic: string): boolean {
	const t = parseTopic(topic);
	return !!t && t.cabinetId === cabinetId && t.kind !== "cmd";
}

/** A cabinet may subscribe only to its own cmd topic, literally (no wildcards). */
export const cabinetMaySubscribe = (cabinetId: string, filter: string) => filter === topicOf(cabinetId, "cmd");

// ---------------------------------------------------------------------------
// Door ids

/** Canonical door id: `{cabinetId}:{no}` with the number padded to 2 digits. */
export const formatDoorId = (cabinetId: string, no: number) => `${cabinetId}:${String(no).padStart(2, "0")}`;

/** `{cabinetId}:{no}` (padding optional) → parts, or null when it is not a door id. */
export function parseDoorId(id: string): { cabinetId: string; no: number } | null {
	const m = /^(cab_[A-Za-z0-9_-]{1,64}):0*([1-9][0-9]{0,3})$/.exec(id);
	return m ? { cabinetId: m[1], no: Number(m[2]) } : null;
}

// ---------------------------------------------------------------------------
// Commands

export interface Command {
	cmdId: string;
	action: "open" | "query";
	/** Absent for query. */
	door?: number;
	epoch: number;
	ts: number;
	notAfter: number;
	sig: string;
}

export type UnsignedCommand = Omit<Command, "sig">;

const signedText = (c: UnsignedCommand) => `${c.cmdId}|${c.action}|${c.door ?? ""}|${c.epoch}|${c.ts}|${c.notAfter}`;

export function commandSignature(secret: string, c: UnsignedCommand): string {
	return crypto.createHmac("sha256", secret).update(signedText(c), "utf8").digest("hex");
}

export function signCommand(secret: string, c: UnsignedCommand): Command {
	const cmd: Command = { cmdId: c.cmdId, action: c.action, epoch: c.epoch, ts: c.ts, notAfter: c.notAfter, sig: "" };
	if (c.door !== undefined) cmd.door = c.door;
	cmd.sig = commandSignature(secret, cmd);
	return cmd;
}

export function verifyCommand(secret: string, c: Command): boolean {
	const want = Buffer.from(commandSignature(secret, c), "hex");
	const got = /^[0-9a-f]{64}$/.test(c.sig) ? Buffer.from(c.sig, "hex") : Buffer.alloc(0);
	return got.length === want.length && crypto.timingSafeEqual(got, want);
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID (26 characters, time-ordered): unique per command across nodes without coordination. */
export function newCmdId(now = Date.now()): string {
	let out = "";
	let t = now;
	for (let i = 0; i < 10; i++) {
		out = CROCKFORD[t % 32] + out;
		t = Math.floor(t / 32);
	}
	const rnd = crypto.randomBytes(16);
	for (let i = 0; i < 16; i++) out += CROCKFORD[rnd[i] & 31];
	return out;
}

// ---------------------------------------------------------------------------
// Parsing

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface Ack {
	cmdId: string;
	ok: boolean;
	door?: number;
	error?: AckError;
	ts: number;
}

export interface DoorReport {
	no: number;
	open: boolean;
	occupied: boolean;
}

export interface StateReport {
	ts: number;
	seq: number;
	boot: string;
	doors: DoorReport[];
}

export interface DoorEvent {
	type: EventType;
	door: number;
	ts: number;
	seq: number;
	occupied?: boolean;
}

export interface Heartbeat {
	ts: number;
	uptime?: number;
	rssi?: number;
}

export type Status = { online: false } | { online: true; boot: string; fw?: string; doors?: number };

type Obj = Record<string, unknown>;
/** Larger payloads are refused as malformed (the protocol's messages are a few hundred bytes). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
const isInt = (v: unknown, min = 0): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
const isDoorNo = (v: unknown): v is number => isInt(v, 1) && v <= 9999;
const isShortString = (v: unknown, max = 128): v is string => typeof v === "string" && v.length > 0 && v.length <= max;

function json(payload: Buffer | string): Parsed<Obj> {
	if (payload.length > MAX_PAYLOAD_BYTES) return { ok: false, reason: "too large" };
	let v: unknown;
	try {
		v = JSON.parse(typeof payload === "string" ? payload : payload.toString("utf8"));
	} catch {
		return { ok: false, reason: "not JSON" };
	}
	return v && typeof v === "object" && !Array.isArray(v) ? { ok: true, value: v as Obj } : { ok: false, reason: "not a JSON object" };
}

const bad = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

export function parseCommand(payload: Buffer | string): Parsed<Command> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (!isShortString(o.cmdId, 64)) return bad("cmdId");
	if (o.action !== "open" && o.action !== "query") return bad("action");
	if (o.action === "open" ? !isDoorNo(o.door) : o.door !== undefined && !isDoorNo(o.door)) return bad("door");
	if (!isInt(o.epoch) || !isInt(o.ts) || !isInt(o.notAfter)) return bad("epoch/ts/notAfter");
	if (typeof o.sig !== "string") return bad("sig");
	const cmd: Command = { cmdId: o.cmdId, action: o.action, epoch: o.epoch, ts: o.ts, notAfter: o.notAfter, sig: o.sig };
	if (o.door !== undefined) cmd.door = o.door as number;
	return { ok: true, value: cmd };
}

export function parseAck(payload: Buffer | string): Parsed<Ack> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (!isShortString(o.cmdId, 64)) return bad("cmdId");
	if (typeof o.ok !== "boolean") return bad("ok");
	if (o.door !== undefined && !isDoorNo(o.door)) return bad("door");
	if (!isInt(o.ts)) return bad("ts");
	if (!o.ok && !(ACK_ERRORS as readonly unknown[]).includes(o.error)) return bad("error");
	const ack: Ack = { cmdId: o.cmdId, ok: o.ok, ts: o.ts };
	if (o.door !== undefined) ack.door = o.door as number;
	if (!o.ok) ack.error = o.error as AckError;
	return { ok: true, value: ack };
}

export function parseState(payload: Buffer | string): Parsed<StateReport> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (!isInt(o.ts) || !isInt(o.seq)) return bad("ts/seq");
	if (!isShortString(o.boot)) return bad("boot");
	if (!Array.isArray(o.doors) || o.doors.length > 9999) return bad("doors");
	const doors: DoorReport[] = [];
	const seen = new Set<number>();
	for (const d of o.doors as unknown[]) {
		const door = d as Obj;
		if (!door || typeof door !== "object" || !isDoorNo(door.no) || typeof door.open !== "boolean" || typeof door.occupied !== "boolean") return bad("doors[]");
		if (seen.has(door.no)) return bad("doors[] repeats a door");
		seen.add(door.no);
		doors.push({ no: door.no, open: door.open, occupied: door.occupied });
	}
	return { ok: true, value: { ts: o.ts, seq: o.seq, boot: o.boot, doors } };
}

export function parseEvent(payload: Buffer | string): Parsed<DoorEvent> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (!(EVENT_TYPES as readonly unknown[]).includes(o.type)) return bad("type");
	if (!isDoorNo(o.door)) return bad("door");
	if (!isInt(o.ts) || !isInt(o.seq)) return bad("ts/seq");
	if (o.occupied !== undefined && typeof o.occupied !== "boolean") return bad("occupied");
	const ev: DoorEvent = { type: o.type as EventType, door: o.door, ts: o.ts, seq: o.seq };
	if (typeof o.occupied === "boolean") ev.occupied = o.occupied;
	return { ok: true, value: ev };
}

export function parseHeartbeat(payload: Buffer | string): Parsed<Heartbeat> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (!isInt(o.ts)) return bad("ts");
	const hb: Heartbeat = { ts: o.ts };
	if (typeof o.uptime === "number") hb.uptime = o.uptime;
	if (typeof o.rssi === "number") hb.rssi = o.rssi;
	return { ok: true, value: hb };
}

export function parseStatus(payload: Buffer | string): Parsed<Status> {
	const j = json(payload);
	if (!j.ok) return j;
	const o = j.value;
	if (o.online === false) return { ok: true, value: { online: false } };
	if (o.online !== true) return bad("online");
	if (!isShortString(o.boot)) return bad("boot");
	const s: Status = { online: true, boot: o.boot };
	if (typeof o.fw === "string") s.fw = o.fw;
	if (isInt(o.doors, 1)) s.doors = o.doors;
	return { ok: true, value: s };
}

/** Any cabinet message, by topic kind. */
export type CabinetMessage =
	| { kind: "ack"; ack: Ack }
	| { kind: "state"; state: StateReport }
	| { kind: "event"; event: DoorEvent }
	| { kind: "heartbeat"; heartbeat: Heartbeat }
	| { kind: "status"; status: Status };

export function parseCabinetMessage(kind: CabinetTopic, payload: Buffer | string): Parsed<CabinetMessage> {
	switch (kind) {
		case "ack": {
			const p = parseAck(payload);
			return p.ok ? { ok: true, value: { kind, ack: p.value } } : p;
		}
		case "state": {
			const p = parseState(payload);
			return p.ok ? { ok: true, value: { kind, state: p.value } } : p;
		}
		case "event": {
			const p = parseEvent(payload);
			return p.ok ? { ok: true, value: { kind, event: p.value } } : p;
		}
		case "heartbeat": {
			const p = parseHeartbeat(payload);
			return p.ok ? { ok: true, value: { kind, heartbeat: p.value } } : p;
		}
		case "status": {
			const p = parseStatus(payload);
			return p.ok ? { ok: true, value: { kind, status: p.value } } : p;
		}
	}
}

/**
 * `(boot, seq)` ordering: within one boot seq only grows; a new boot starts
 * over. Returns whether a message is newer than the last one applied.
 */
export function isNewer(last: { boot: string; seq: number } | undefined, msg: { boot: string; seq: number }): boolean {
	return !last || last.boot !== msg.boot || msg.seq > last.seq;
}
