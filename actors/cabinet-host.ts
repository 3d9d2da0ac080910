/**
 * The door actors of one cabinet, on the node that holds the cabinet's lease.
 * No broker in here: the doors service gives it a store, a way to send a
 * command and a way to emit an event, so tests can drive it directly.
 *
 * - Each door has a mailbox: its messages run one at a time, so "is it free?
 *   then reserve it" cannot race. Mailboxes are bounded (429 when full).
 * - Every change is written to the store (under the lease epoch) before it is
 *   answered or emitted; the events ride in the record's outbox.
 * - Commands carry the lease epoch and a cmdId, wait for the ack up to their
 *   deadline, and a timeout makes the outcome unknown (a `query` follows, never
 *   a new open). A cabinet that is offline or keeps timing out answers at once
 *   with CABINET_OFFLINE (a per-cabinet circuit breaker).
 */
import { Errors } from "moleculer";
import {
	beginOpen, disable, enable, isFree, isQuiet, newDoorRecord, nextDue, onAck, onAckTimeout, onAlarm, onReport, onTimer, ORDER_EVENTS, release, reserve,
	type AckResult, type DoorEffect, type DoorRecord, type OpenPurpose, type Outcome, type OutboxItem,
} from "./door-machine";
import type { DoorStore, SaveItem } from "./door-store";
import type { DoorView, OrderDoorEvent } from "../domain/doors";
import { KeyedQueue } from "../lib/key-queue";
import { AckWaiters } from "./ack-waiters";
import { deliverInOrder } from "../mixins/outbox";
import { formatDoorId, isNewer, newCmdId, signCommand, type CabinetMessage, type Command } from "../domain/protocol";

export interface HostSettings {
	heartbeatSec: number;
	/** How long a command may take to be acked (also its notAfter). */
	commandTimeoutMs: number;
	openTooLongMs: number;
	leaseTtlMs: number;
	mailboxLimit: number;
	/** Consecutive timeouts that open the cabinet's breaker, and for how long. */
	breakerFailures: number;
	breakerOpenMs: number;
	/** Door records of a quiet cabinet are dropped from memory after this long without activity. */
	idleMs: number;
}

export const DEFAULT_HOST_SETTINGS: HostSettings = {
	heartbeatSec: 30, commandTimeoutMs: 5_000, openTooLongMs: 120_000, leaseTtlMs: 10_000, mailboxLimit: 64,
	breakerFailures: 3, breakerOpenMs: 30_000, idleMs: 60_000,
};

export interface CatalogCabinet {
	pointId: string;
	merchantId: string;
	doors: { no: number; size: string; disabled: boolean }[];
	/** The signing secret (derived by the service; never stored). */
	secret: string;
}

export interface HostDeps {
	store: DoorStore;
	/** This process's lease owner token. */
	owner: string;
	settings: HostSettings;
	now(): number;
	catalog(cabinetId: string): Promise<CatalogCabinet>;
	send(cabinetId: string, cmd: Command): Promise<void>;
	emit(event: string, payload: Record<string, unknown>): void;
	/** Hands an order's door event to the orders service; resolves once it acknowledged. */
	toOrders(event: OrderDoorEvent): Promise<void>;
	/** The lease was lost: the service drops this host. */
	lost(host: CabinetHost, why: string): void;
	/** Something an operator should know (rate-limited by the service). */
	warn(message: string): void;
	/** A command was acked after `ms` (metrics; timeouts are not acks). */
	acked?(action: "open", ms: number): void;
}

export type { DoorView };

interface Slot {
	record: DoorRecord;
	size: string;
	/** Its events for orders are being delivered right now. */
	relaying?: boolean;
	/** The order whose reservation is queued in the mailbox right now (a race for one door ends here). */
	reserving: string | null;
}

export type ReportResult = "applied" | "malformed";

const { MoleculerClientError, MoleculerRetryableError } = Errors;
export const notOwner = (cabinetId: string, heldBy?: string, expiresInMs?: number) =>
	new MoleculerRetryableError(`This node does not own cabinet ${cabinetId}`, 503, "NOT_OWNER", { cabinetId, heldBy, expiresInMs });
export const cabinetOffline = (cabinetId: string) => new MoleculerRetryableError(`Cabinet ${cabinetId} is offline`, 503, "CABINET_OFFLINE", { cabinetId });
/** The store did not answer (Redis down or paused): a 503 to retry, never a 500. */
const storeUnavailable = (cabinetId: string, err: unknown) =>
	new MoleculerRetryableError(`Door state store unavailable: ${(err as Error)?.message ?? err}`, 503, "STORE_UNAVAILABLE", { cabinetId });
/** A store call whose failure is a 503 of its own. */
function fromStore<T>(cabinetId: string, p: Promise<T>): Promise<T> {
	return p.catch(err => {
		throw storeUnavailable(cabinetId, err);
	});
}
const refusal = (o: Extract<Outcome, { ok: false }>, doorId: string) => new MoleculerClientError(o.message, o.status, o.type, { doorId });

/** Anomaly kinds and outbox events → event names on the mesh. */
const EVENT_NAMES: Record<DoorEffect["event"], string> = {
	changed: "doors.state.changed",
	deposited: "doors.door.deposited",
	pickedUp: "doors.door.pickedUp",
	reservationExpired: "doors.reservation.expired",
	closed: "doors.door.closed",
	anomaly: "doors.anomaly",
};

/** Events kept per door for the orders service at most (older ones are dropped, with a warning). */
const MAX_FOR_ORDERS = 32;

/** A STALE_EPOCH answer moves the lease to a new epoch at most this often (never a loop). */
const EPOCH_BUMP_INTERVAL_MS = 10_000;
/** A cabinet is asked for a full state at most this often. */
const QUERY_INTERVAL_MS = 2_000;

export class CabinetHost {
	readonly id: string;
	private currentEpoch: number;
	online = false;
	boot: string | null = null;
	lastSeq = -1;
	lastSeenAt = 0;
	lastActivity: number;
	private readonly slots = new Map<number, Slot>();
	private loaded = false;
	private loading?: Promise<void>;
	private readonly acks = new AckWaiters();
	/** One mailbox per door (by number): its messages run one at a time. */
	private readonly mailbox = new KeyedQueue<number>();
	private timeouts = 0;
	private lastBumpAt = 0;
	private retaking?: Promise<boolean>;
	/** Set while handing over: the node that should own the cabinet next (callers are sent there). */
	private successor?: string;
	private lastQueryAt = 0;
	private breakerOpenUntil = 0;
	private fenced = false;
	/** Handing over: no new operations; the next owner takes them. */
	private leaving = false;
	private lastRenew: number;
	/** Resolves on the first message from the cabinet since this host took the lease. */
	private heard!: Promise<void>;
	private markHeard!: () => void;
	/** Records whose outbox was emitted but not yet written back as empty. */
	private readonly dirty = new Set<number>();

	private constructor(id: string, epoch: number, private cat: CatalogCabinet, private readonly deps: HostDeps) {
		this.id = id;
		this.currentEpoch = epoch;
		this.lastActivity = deps.now();
		this.lastRenew = deps.now();
		this.heard = new Promise(resolve => (this.markHeard = resolve));
	}

	/** Takes the cabinet's lease (or fails with NOT_OWNER) and loads what is needed to act for it. */
	static async open(cabinetId: string, deps: HostDeps): Promise<CabinetHost> {
		const lease = await fromStore(cabinetId, deps.store.acquire(cabinetId, deps.owner, deps.settings.leaseTtlMs));
		if ("heldBy" in lease) throw notOwner(cabinetId, lease.heldBy, lease.expiresInMs);
		try {
			const cat = await deps.catalog(cabinetId);
			const host = new CabinetHost(cabinetId, lease.epoch, cat, deps);
			// The previous owner heard the cabinet lately (as it renewed or released the lease), so it may be
			// commanded before it is heard here: after a hand-over its reports may still go to the previous
			// owner for a moment (the mesh learns of a node one node at a time), and after a failover they
			// come only at its next heartbeat. Offline here too if nothing comes within the same window.
			if (lease.heardForMs) {
				host.lastSeenAt = deps.now() - (host.silenceMs - Math.min(lease.heardForMs, host.silenceMs));
				host.setOnline(true, "handed over by its previous owner");
			}
			await host.ensureLoaded();
			// A new owner knows nothing of the link yet: ask for a full state (it also carries the
			// new epoch to the cabinet, which from then on refuses the previous owner's commands).
			void host.query(true);
			return host;
		} catch (err) {
			await deps.store.release(cabinetId, deps.owner, lease.epoch).catch(() => undefined);
			throw err;
		}
	}

	/** The lease epoch commands carry now. */
	get epoch(): number {
		return this.currentEpoch;
	}

	/** Door records in memory (0 when passivated). */
	get residentDoors(): number {
		return this.slots.size;
	}

	// -------------------------------------------------------------------------
	// Operations (the doors service's actions)

	/**
	 * Reserves the door for the order. While one reservation is queued, others
	 * for the door are refused at once (409) rather than queued: of many orders
	 * racing for one door exactly one wins, and the mailbox stays short.
	 */
	async reserve(no: number, orderId: string, until: number): Promise<DoorView> {
		await this.ensureLoaded();
		const slot = this.slots.get(no);
		if (slot && slot.reserving !== null && slot.reserving !== orderId) {
			throw new MoleculerClientError(`Door ${slot.record.doorId} is being reserved by another order`, 409, "DOOR_NOT_AVAILABLE", { doorId: slot.record.doorId });
		}
		if (slot) slot.reserving = orderId;
		try {
			return this.view(await this.run(no, s => this.commit(s, reserve(s.record, orderId, until, this.deps.now()))));
		} finally {
			if (slot?.reserving === orderId) slot.reserving = null;
		}
	}

	/** Reserves any free door of the size: tries each in turn (each try is atomic in its door's mailbox). */
	async reserveAny(size: string, orderId: string, until: number): Promise<DoorView | null> {
		await this.ensureLoaded();
		const held = [...this.slots.values()].find(s => s.record.orderId === orderId && s.record.state === "reserved");
		if (held) return this.view(held.record); // a retry of the same order
		for (const slot of this.slots.values()) {
			if (slot.size !== size || !isFree(slot.record)) continue;
			const out = await this.run(slot.record.no, s => (isFree(s.record) ? this.commit(s, reserve(s.record, orderId, until, this.deps.now())) : null));
			if (out) return this.view(out);
		}
		return null;
	}

	async release(no: number, orderId: string): Promise<DoorView> {
		return this.view(await this.run(no, slot => this.commit(slot, release(slot.record, orderId, this.deps.now()))));
	}

	async setDisabled(no: number, disabled: boolean): Promise<DoorView> {
		const now = this.deps.now();
		return this.view(await this.run(no, slot => this.commit(slot, disabled ? disable(slot.record, now) : enable(slot.record, now))));
	}

	/**
	 * Opens a door and answers once the cabinet acked. The pending command is
	 * written before it is sent; the door's mailbox is free while the ack is
	 * awaited (other messages see the pending command).
	 */
	async open(no: number, purpose: OpenPurpose, orderId: string | null): Promise<DoorView> {
		await this.ensureReachable();
		const { settings } = this.deps;
		const sent = await this.run(no, async slot => {
			const now = this.deps.now();
			const out = beginOpen(slot.record, { purpose, orderId, cmdId: newCmdId(now), notAfter: now + settings.commandTimeoutMs }, now);
			const record = await this.commit(slot, out);
			return { record, cmdId: out.cmdId! };
		});
		const pending = sent.record.pending!;
		const cmd = signCommand(this.cat.secret, { cmdId: sent.cmdId, action: "open", door: no, epoch: this.epoch, ts: this.deps.now(), notAfter: pending.notAfter });
		const ack = this.acks.wait(sent.cmdId, no, Math.max(0, pending.notAfter - this.deps.now()));
		const sentAt = performance.now();
		await this.deps.send(this.id, cmd).catch(() => undefined); // a lost publish is a timeout, and settled the same way
		const result = await ack;
		if (result !== "timeout") this.deps.acked?.("open", performance.now() - sentAt);
		// Every open's outcome, for the unlock failure rates (alerts).
		this.deps.emit("doors.open.completed", {
			cabinetId: this.id, pointId: this.cat.pointId, merchantId: this.cat.merchantId, doorId: formatDoorId(this.id, no), ok: result !== "timeout" && result.ok,
			error: result === "timeout" ? "TIMEOUT" : result.ok ? null : result.error, at: this.deps.now(),
		});
		return this.view(await this.run(no, async slot => {
			const now = this.deps.now();
			if (result === "timeout") {
				await this.commit(slot, onAckTimeout(slot.record, sent.cmdId, now));
				this.noteTimeout();
				void this.query(true);
				throw new MoleculerRetryableError(`Cabinet ${this.id} did not ack in time; the outcome is being checked`, 504, "DOOR_TIMEOUT", { doorId: slot.record.doorId, cmdId: sent.cmdId });
			}
			this.timeouts = 0;
			const record = await this.commit(slot, onAck(slot.record, sent.cmdId, result, now));
			if (!result.ok) throw this.ackError(result.error, record.doorId);
			return record;
		}, true));
	}

	door(no: number): Promise<DoorView> {
		return this.run(no, async slot => this.view(slot.record));
	}

	async doors(): Promise<DoorView[]> {
		await this.ensureLoaded();
		return [...this.slots.values()].sort((a, b) => a.record.no - b.record.no).map(s => this.view(s.record));
	}

	// -------------------------------------------------------------------------
	// What the cabinet says

	/** Applies a parsed message; "malformed" when it contradicts what it answers (an ack for another door). */
	async report(msg: CabinetMessage): Promise<ReportResult> {
		const now = this.deps.now();
		this.markHeard();
		this.lastSeenAt = now;
		this.lastActivity = now;
		this.timeouts = 0;
		this.breakerOpenUntil = 0;
		switch (msg.kind) {
			case "status":
				if (msg.status.online) {
					if (this.boot !== msg.status.boot) {
						this.boot = msg.status.boot;
						this.lastSeq = -1;
					}
					this.setOnline(true, "status");
				} else {
					this.setOnline(false, "last will or goodbye");
				}
				return "applied";
			case "heartbeat":
				this.setOnline(true, "heartbeat");
				return "applied";
			case "ack": {
				const { ack } = msg;
				// An ack names its command's door (PROTOCOL.md): one naming another door is not this
				// command's answer. Counted as malformed; the command keeps waiting for its own.
				const door = this.acks.doorOf(ack.cmdId) ?? this.pendingDoorOf(ack.cmdId);
				if (door !== undefined && ack.door !== door) return "malformed";
				this.setOnline(true, "ack");
				const result: AckResult = ack.ok ? { ok: true } : { ok: false, error: ack.error! };
				if (!ack.ok && ack.error === "STALE_EPOCH") void this.onStaleEpoch();
				if (this.acks.settle(ack.cmdId, result)) return "applied";
				// Nobody here waits for it (sent by the previous owner, or after a timeout): the record
				// may still hold it as pending.
				if (door !== undefined) {
					await this.run(door, s => this.commit(s, onAck(s.record, ack.cmdId, result, this.deps.now()))).catch(() => undefined);
				}
				return "applied";
			}
			case "state": {
				const s = msg.state;
				if (!isNewer(this.boot === null ? undefined : { boot: this.boot, seq: this.lastSeq }, s)) return "applied";
				this.boot = s.boot;
				this.lastSeq = s.seq;
				this.setOnline(true, "state");
				await this.ensureLoaded();
				await Promise.all(s.doors.map(d => {
					const slot = this.slots.get(d.no);
					if (!slot) return undefined; // a door the catalog does not know: ignored
					if (slot.record.open === d.open && slot.record.occupied === d.occupied && !slot.record.pending) return undefined;
					return this.run(d.no, sl => this.commit(sl, onReport(sl.record, { open: d.open, occupied: d.occupied }, this.deps.now()))).catch(() => undefined);
				}));
				return "applied";
			}
			case "event": {
				const e = msg.event;
				if (this.boot !== null && e.seq <= this.lastSeq) return "applied"; // older than what was applied
				this.lastSeq = e.seq;
				this.setOnline(true, "event");
				if (!this.cat.doors.some(d => d.no === e.door)) return "applied";
				await this.run(e.door, slot => {
					const t = this.deps.now();
					switch (e.type) {
						case "opened":
							return this.commit(slot, onReport(slot.record, { open: true }, t));
						case "forced_open":
							return this.commit(slot, onReport(slot.record, { open: true, forced: true }, t));
						case "closed":
							return this.commit(slot, onReport(slot.record, { open: false, occupied: e.occupied }, t));
						default:
							return this.commit(slot, onAlarm(slot.record, e.type, t));
					}
				}).catch(() => undefined);
				return "applied";
			}
		}
	}

	/**
	 * Asks the cabinet for a full state: after a takeover, a timeout, a dropped
	 * report or a new epoch — whenever reports may have been missed. At most
	 * one per QUERY_INTERVAL_MS unless `force`d.
	 */
	async query(force = false): Promise<void> {
		const now = this.deps.now();
		if (!force && now - this.lastQueryAt < QUERY_INTERVAL_MS) return;
		this.lastQueryAt = now;
		const cmd = signCommand(this.cat.secret, { cmdId: newCmdId(now), action: "query", epoch: this.epoch, ts: now, notAfter: now + this.deps.settings.commandTimeoutMs });
		await this.deps.send(this.id, cmd).catch(() => undefined);
	}

	/**
	 * Once a second: durable timers, silence, the lease, passivation. Returns
	 * false when the host should be dropped (lease lost, or idle and offline).
	 */
	async tick(): Promise<boolean> {
		if (this.fenced) return false;
		const now = this.deps.now();
		const { settings } = this.deps;
		if (now - this.lastRenew >= settings.leaseTtlMs / 3) {
			this.lastRenew = now;
			if (!(await this.deps.store.renew(this.id, this.deps.owner, this.epoch, settings.leaseTtlMs, this.heardForMs())) && !(await this.retake())) {
				this.loseLease("the lease expired or was taken over");
				return false;
			}
		}
		if (this.online && now - this.lastSeenAt > this.silenceMs) this.setOnline(false, "silence");
		for (const slot of this.slots.values()) {
			const due = nextDue(slot.record, settings.openTooLongMs);
			if (due !== null && due <= now) {
				await this.run(slot.record.no, s => this.commit(s, onTimer(s.record, this.deps.now(), settings.openTooLongMs))).catch(() => undefined);
			}
			void this.relayToOrders(slot); // events the orders service has not acknowledged yet
		}
		const idle = now - this.lastActivity > settings.idleMs;
		if (idle && this.loaded && !this.acks.size && [...this.slots.values()].every(s => isQuiet(s.record) && this.mailbox.size(s.record.no) === 0)) {
			// Delivered outboxes are written back empty only now (the next write of a door carries it
			// anyway): a reload must not replay them.
			if (this.dirty.size) await this.flushDirty();
			this.slots.clear(); // passivated: records stay in the store, loaded again on the next use
			this.loaded = false;
		}
		if (idle && !this.online && !this.loaded) {
			await this.deps.store.release(this.id, this.deps.owner, this.epoch).catch(() => undefined);
			return false;
		}
		return true;
	}

	/**
	 * Lets go of the lease (rebalancing, shutdown): no new operations, the
	 * commands in flight get their ack or time out (bounded), the mailboxes
	 * drain, then the next owner takes over from the store.
	 */
	async handOver(successorNode?: string): Promise<void> {
		this.leaving = true;
		this.successor = successorNode ? `${successorNode}#handover` : undefined;
		await this.acks.drain();
		await this.mailbox.drain();
		if (this.dirty.size) await this.flushDirty().catch(() => undefined);
		this.fenced = true;
		await this.deps.store.release(this.id, this.deps.owner, this.epoch, this.heardForMs()).catch(() => undefined);
	}

	/** What was heard of the cabinet, kept with the lease for the next owner: the rest of its silence window, or 0. */
	private heardForMs(): number {
		return this.online ? this.silenceMs - (this.deps.now() - this.lastSeenAt) : 0;
	}

	/** Silent this long, the cabinet counts as offline (three heartbeats, PROTOCOL.md). */
	private get silenceMs(): number {
		return 3 * this.deps.settings.heartbeatSec * 1000;
	}

	/** The catalog changed (doors added, secret rotated). */
	updateCatalog(cat: CatalogCabinet): void {
		this.cat = cat;
		for (const d of cat.doors) {
			const slot = this.slots.get(d.no);
			if (slot) slot.size = d.size;
		}
		if (cat.doors.some(d => !this.slots.has(d.no))) this.loaded = false;
	}

	// -------------------------------------------------------------------------

	/**
	 * Fails fast for a cabinet known to be offline. A new owner first waits for the cabinet's answer to its
	 * query, or its next heartbeat if that answer is lost: up to a heartbeat period (at least 2 s), bounded
	 * by half the lease so the caller's budget (command timeout + half the lease + 1 s) still holds.
	 */
	private async ensureReachable(): Promise<void> {
		if (!this.online && this.lastSeenAt === 0) {
			const { heartbeatSec, leaseTtlMs } = this.deps.settings;
			const waitMs = Math.min(leaseTtlMs / 2, Math.max(2000, heartbeatSec * 1000 + 500));
			await Promise.race([this.heard, new Promise(r => setTimeout(r, waitMs))]);
		}
		if (!this.online || this.deps.now() < this.breakerOpenUntil) throw cabinetOffline(this.id);
	}

	private noteTimeout(): void {
		if (++this.timeouts >= this.deps.settings.breakerFailures) this.breakerOpenUntil = this.deps.now() + this.deps.settings.breakerOpenMs;
	}

	private setOnline(online: boolean, why: string): void {
		if (online === this.online) return;
		this.online = online;
		this.deps.emit(online ? "doors.cabinet.online" : "doors.cabinet.offline", { cabinetId: this.id, pointId: this.cat.pointId, merchantId: this.cat.merchantId, reason: why, at: this.deps.now() });
	}

	private loseLease(why: string): void {
		if (this.fenced) return;
		this.fenced = true;
		this.acks.failAll();
		this.deps.lost(this, why);
	}

	/**
	 * The lease could not be renewed. If nobody else holds it now, it ran out
	 * (the store paused) or the store forgot it (restarted empty): take it again
	 * under a new epoch. Per door the newer version wins: the store's (another
	 * owner, or a write of ours that timed out yet landed, wrote it meanwhile) is
	 * taken up; ours is written back where the store lost it. Then the cabinet is
	 * asked for a full state. False when another node holds the lease.
	 */
	private retake(): Promise<boolean> {
		this.retaking ??= this.tryRetake().finally(() => (this.retaking = undefined));
		return this.retaking;
	}

	private async tryRetake(): Promise<boolean> {
		if (this.fenced || this.leaving) return false;
		try {
			const lease = await this.deps.store.acquire(this.id, this.deps.owner, this.deps.settings.leaseTtlMs);
			if (!("epoch" in lease)) return false;
			const stored = new Map((await this.deps.store.load(this.id)).map(r => [r.no, r]));
			const slots = [...this.slots.values()];
			for (const sl of slots) {
				const theirs = stored.get(sl.record.no);
				if (theirs && theirs.version > sl.record.version) {
					sl.record = theirs;
					this.deliver(sl); // its events, if the writer died before sending them
				}
			}
			this.currentEpoch = lease.epoch;
			const lost = slots.filter(sl => (stored.get(sl.record.no)?.version ?? -1) < sl.record.version);
			if (lost.length && !(await this.deps.store.save(this.id, this.deps.owner, lease.epoch, lost.map(sl => this.saveItem(sl, sl.record))))) return false;
			if (lost.length) this.deps.warn(`Cabinet ${this.id}: the door store had lost ${lost.length} door record(s); written back from memory at epoch ${lease.epoch}`);
			void this.query(true);
			return true;
		} catch {
			return false;
		}
	}

	/**
	 * The cabinet has seen a higher epoch than ours. If the store still says the
	 * lease is ours, the store forgot (or a clock went back): take a new epoch,
	 * which is above every one handed out, and ask again — once per interval, so
	 * a cabinet that keeps refusing cannot drive a loop. If the lease is not ours,
	 * another node owns the cabinet and this host stops.
	 */
	private async onStaleEpoch(): Promise<void> {
		const now = this.deps.now();
		if (this.fenced || now - this.lastBumpAt < EPOCH_BUMP_INTERVAL_MS) return;
		this.lastBumpAt = now;
		let next: number | null;
		try {
			next = await this.deps.store.bump(this.id, this.deps.owner, this.currentEpoch);
		} catch {
			return; // the store is unreachable: the next refusal tries again
		}
		if (next === null) return this.loseLease("the cabinet has seen a newer owner");
		this.deps.warn(`Cabinet ${this.id} had seen a higher epoch than ${this.currentEpoch} (the store forgot it?); moved to ${next}`);
		this.currentEpoch = next;
		void this.query(true);
	}

	/** The door whose record holds `cmdId` as its pending command, if any. */
	private pendingDoorOf(cmdId: string): number | undefined {
		for (const slot of this.slots.values()) if (slot.record.pending?.cmdId === cmdId) return slot.record.no;
		return undefined;
	}

	private ackError(error: string, doorId: string): Error {
		switch (error) {
			case "JAMMED":
			case "HARDWARE_FAULT":
			case "NO_SUCH_DOOR":
				return new MoleculerClientError(`Door ${doorId} did not open (${error}); it is marked faulty`, 409, "DOOR_FAULT", { doorId, error });
			default: // BUSY, EXPIRED, STALE_EPOCH: it did not run
				return new MoleculerRetryableError(`Cabinet ${this.id} did not run the command (${error})`, 503, "CABINET_BUSY", { doorId, error });
		}
	}

	private async ensureLoaded(): Promise<void> {
		if (this.loaded) return;
		if (!this.loading) {
			this.loading = (async () => {
				const stored = new Map((await fromStore(this.id, this.deps.store.load(this.id))).map(r => [r.no, r]));
				const now = this.deps.now();
				const redeliver: Slot[] = [];
				for (const d of this.cat.doors) {
					if (this.slots.has(d.no)) continue;
					const record = stored.get(d.no) ?? newDoorRecord(this.id, d.no, formatDoorId(this.id, d.no), d.disabled, now);
					const slot: Slot = { record, size: d.size, reserving: null };
					this.slots.set(d.no, slot);
					if (record.outbox?.length || record.forOrders?.length) redeliver.push(slot);
				}
				this.loaded = true;
				for (const slot of redeliver) this.deliver(slot); // a previous owner died between writing and emitting
			})().finally(() => (this.loading = undefined));
		}
		await this.loading;
	}

	/** Runs `fn` in the door's mailbox (one message at a time per door). */
	private async run<T>(no: number, fn: (slot: Slot) => Promise<T> | T, finishing = false): Promise<T> {
		// While handing over, only the ends of operations already under way still run here.
		if (this.fenced || (this.leaving && !finishing)) throw notOwner(this.id, this.successor);
		await this.ensureLoaded();
		const slot = this.slots.get(no);
		if (!slot) throw new MoleculerClientError(`Door ${formatDoorId(this.id, no)} not found`, 404, "NOT_FOUND", { doorId: formatDoorId(this.id, no) });
		if (this.mailbox.size(no) >= this.deps.settings.mailboxLimit) {
			throw new MoleculerClientError(`Door ${slot.record.doorId} is busy; try again shortly`, 429, "RATE_LIMITED", { doorId: slot.record.doorId, retryAfter: 1 });
		}
		this.lastActivity = this.deps.now();
		return this.mailbox.run(no, () => {
			if (this.fenced) throw notOwner(this.id);
			return fn(slot);
		});
	}

	/** Writes a transition (with its events in the outbox) under the lease, then emits them. */
	private async commit(slot: Slot, out: Outcome): Promise<DoorRecord> {
		if (!out.ok) throw refusal(out, slot.record.doorId);
		if (out.record === slot.record && out.effects.length === 0) return slot.record;
		const now = this.deps.now();
		const outbox: OutboxItem[] = [...(slot.record.outbox ?? []), ...out.effects.map(e => ({ ...e, version: out.record.version, at: now }))];
		const record: DoorRecord = { ...out.record, outbox };
		const epoch = this.currentEpoch;
		let saved = await fromStore(this.id, this.deps.store.save(this.id, this.deps.owner, epoch, [this.saveItem(slot, record)]));
		// The epoch moved on while this write was under way (onStaleEpoch), or the lease ran out or was
		// forgotten and nobody else took it (retake): it is still ours.
		if (!saved && (this.currentEpoch !== epoch || (await this.retake()))) {
			saved = await fromStore(this.id, this.deps.store.save(this.id, this.deps.owner, this.currentEpoch, [this.saveItem(slot, record)]));
		}
		if (!saved) {
			this.loseLease("a write was fenced off");
			throw notOwner(this.id);
		}
		slot.record = record;
		this.deliver(slot);
		return record;
	}

	/**
	 * Emits the outbox; it is written back empty with the next write (or tick). Consumers dedupe
	 * by (doorId, version, event). Events of an order also go to the orders service, by an
	 * acknowledged call, and stay in the record (`forOrders`) until it answered.
	 */
	private deliver(slot: Slot): void {
		const items = slot.record.outbox ?? [];
		if (!items.length) return void this.relayToOrders(slot);
		const r = slot.record;
		const forOrders = [...(r.forOrders ?? []), ...items.filter(i => ORDER_EVENTS.has(i.event) && i.detail?.orderId)];
		if (forOrders.length > MAX_FOR_ORDERS) this.deps.warn(`Door ${r.doorId}: ${forOrders.length - MAX_FOR_ORDERS} event(s) for orders dropped (orders unreachable for long)`);
		for (const item of items) {
			const base = { doorId: r.doorId, cabinetId: r.cabinetId, pointId: this.cat.pointId, merchantId: this.cat.merchantId, no: r.no, size: slot.size, version: item.version, at: item.at };
			if (item.event === "changed") {
				this.deps.emit(EVENT_NAMES.changed, { ...base, state: r.state, orderId: r.orderId, open: r.open, occupied: r.occupied });
			} else if (item.event === "anomaly") {
				this.deps.emit(EVENT_NAMES.anomaly, { ...base, kind: item.anomaly, detail: item.detail ?? {} });
			} else {
				this.deps.emit(EVENT_NAMES[item.event], { ...base, ...(item.detail ?? {}) });
			}
		}
		slot.record = { ...slot.record, outbox: [], forOrders: forOrders.slice(-MAX_FOR_ORDERS) };
		this.dirty.add(slot.record.no);
		void this.relayToOrders(slot);
	}

	/** Delivers the door's events for orders, oldest first, each dropped from the record once acknowledged. */
	private async relayToOrders(slot: Slot): Promise<void> {
		if (slot.relaying || !slot.record.forOrders?.length) return;
		slot.relaying = true;
		try {
			// Again while events arrived during a round (they are appended behind those being delivered).
			for (let r = slot.record; r.forOrders?.length && !this.fenced; r = slot.record) {
				await deliverInOrder(
					r.forOrders,
					item => this.deps.toOrders({
						eventId: `${r.doorId}:${item.version}:${item.event}`, event: item.event as OrderDoorEvent["event"], doorId: r.doorId, cabinetId: r.cabinetId,
						orderId: String(item.detail!.orderId), version: item.version, at: item.at,
						...(typeof item.detail?.occupied === "boolean" ? { occupied: item.detail.occupied } : {}),
					}),
					item => {
						slot.record = { ...slot.record, forOrders: (slot.record.forOrders ?? []).filter(i => i !== item) };
						this.dirty.add(slot.record.no);
					},
				);
			}
		} catch {
			// Orders unreachable: the tick tries again.
		} finally {
			slot.relaying = false;
		}
	}


	private async flushDirty(): Promise<void> {
		const records = [...this.dirty].map(no => this.slots.get(no)).filter((s): s is Slot => !!s && this.mailbox.size(s.record.no) === 0);
		if (!records.length) return;
		for (const s of records) this.dirty.delete(s.record.no);
		const write = () => this.deps.store.save(this.id, this.deps.owner, this.epoch, records.map(s => this.saveItem(s, s.record)));
		if (!(await write()) && !((await this.retake()) && (await write()))) this.loseLease("a write was fenced off");
	}

	private saveItem(slot: Slot, record: DoorRecord): SaveItem {
		const taken = record.state !== "disabled" && !isFree(record);
		return {
			record, due: nextDue(record, this.deps.settings.openTooLongMs),
			taken: taken ? {
				doorId: record.doorId, pointId: this.cat.pointId, size: slot.size, state: record.state, open: record.open, occupied: record.occupied, version: record.version,
			} : null,
		};
	}

	private view(r: DoorRecord): DoorView {
		return {
			id: r.doorId, no: r.no, size: this.slots.get(r.no)?.size ?? "", state: r.state, open: r.open, occupied: r.occupied, orderId: r.orderId,
			reservedUntil: r.reservedUntil === null ? null : new Date(r.reservedUntil).toISOString(), version: r.version,
		};
	}
}
