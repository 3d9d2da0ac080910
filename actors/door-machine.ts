/**
 * The state of one door, and every way it may change — pure, no broker, no
 * clock of its own (callers pass `now`).
 *
 * Two halves meet here (PROTOCOL.md "Platform obligations"): what the platform
 * decided (`state`, `orderId`: available, reserved, occupied, fault, disabled)
 * and what the cabinet reported (`open`, `occupied` sensor). Every transition
 * returns the new record and the events it causes; the caller persists the
 * record before it answers anyone or emits anything, so nothing is
 * acknowledged that a crash could take back.
 *
 * An open command in flight is kept in `pending`. If no ack arrives before its
 * `notAfter`, its outcome is unknown: it is settled by the cabinet's next
 * reports (the door was seen open after the command was sent → it ran), never
 * by sending a new open. After `notAfter` the cabinet refuses the old command,
 * so once a report shows the door closed and no opening since, it did not run.
 */

import type { DoorState } from "../domain/doors";

export { DOOR_STATES, type DoorState } from "../domain/doors";
export type OpenPurpose = "deposit" | "pickup" | "operator";

export interface PendingOpen {
	cmdId: string;
	purpose: OpenPurpose;
	orderId: string | null;
	sentAt: number;
	notAfter: number;
	/** No ack by notAfter: waiting for reports to tell. */
	unknown: boolean;
}

export interface DoorRecord {
	doorId: string;
	cabinetId: string;
	no: number;
	state: DoorState;
	orderId: string | null;
	/** Reservation expiry (durable timer), ms. */
	reservedUntil: number | null;
	/** Last reported physical state. */
	open: boolean;
	occupied: boolean;
	/** When the door was reported open (durable timer for "open too long"), ms. */
	openSince: number | null;
	/** "Door left open" already raised for this opening. */
	openAlerted: boolean;
	/** Last time a door opening was seen (event or state), ms: settles unknown commands. */
	lastOpenedAt: number | null;
	/** An acked unlock whose opening has not been seen yet, ms (an opening without one is forced). */
	unlockedAt: number | null;
	pending: PendingOpen | null;
	/** What the last fault was (jammed, hardware fault, …). */
	fault: string | null;
	version: number;
	updatedAt: number;
	/**
	 * Events of committed transitions not yet known to be delivered: written in
	 * the same record as the change (an outbox), emitted after the write, and
	 * emitted again by whoever loads the record next if the node died first.
	 */
	outbox?: OutboxItem[];
	/**
	 * Emitted events the orders service has not acknowledged yet (deposited,
	 * picked up, closed, expired): delivered again until it answers.
	 */
	forOrders?: OutboxItem[];
}

export interface OutboxItem extends DoorEffect {
	version: number;
	at: number;
}

export type DoorEventName =
	| "changed" // doors.state.changed: any change of state/orderId/open/occupied
	| "deposited" // closed on a bag for the order holding it
	| "pickedUp" // closed empty after the pickup opening
	| "reservationExpired"
	/** The door of an order closed after an opening (with or without the bag in it). */
	| "closed"
	| "anomaly";

export type AnomalyKind =
	| "forced_open"
	| "jammed"
	| "door_left_open"
	| "unexpected_occupied"
	| "hardware_fault"
	| "command_unknown"
	| "sensor_fault"
	| "tamper"
	| "power_loss";

export interface DoorEffect {
	event: DoorEventName;
	anomaly?: AnomalyKind;
	detail?: Record<string, unknown>;
}

export type Outcome =
	| { ok: true; record: DoorRecord; effects: DoorEffect[] }
	| { ok: false; status: 409 | 422; type: string; message: string };

export function newDoorRecord(cabinetId: string, no: number, doorId: string, disabled: boolean, now: number): DoorRecord {
	return {
		doorId, cabinetId, no, state: disabled ? "disabled" : "available", orderId: null, reservedUntil: null,
		open: false, occupied: false, openSince: null, openAlerted: false, lastOpenedAt: null, unlockedAt: null, pending: null, fault: null,
		version: 0, updatedAt: now,
	};
}

const refuse = (type: string, message: string, status: 409 | 422 = 409): Outcome => ({ ok: false, status, type, message });

function next(r: DoorRecord, patch: Partial<DoorRecord>, now: number, effects: DoorEffect[] = []): Outcome {
	const record: DoorRecord = { ...r, ...patch, version: r.version + 1, updatedAt: now };
	const visible = record.state !== r.state || record.orderId !== r.orderId || record.open !== r.open || record.occupied !== r.occupied;
	return { ok: true, record, effects: visible ? [{ event: "changed" }, ...effects] : effects };
}

/** Unchanged (an idempotent repeat): nothing to write, nothing to emit. */
const same = (record: DoorRecord): Outcome => ({ ok: true, record, effects: [] });

/** Can this door be given to a new order right now (business and physical state agree)? */
export const isFree = (r: DoorRecord) => r.state === "available" && !r.open && !r.occupied && !r.pending;

export function reserve(r: DoorRecord, orderId: string, until: number, now: number): Outcome {
	if (r.state === "reserved" && r.orderId === orderId) return same(r); // a retry of the same reservation
	if (r.state !== "available") return refuse("DOOR_NOT_AVAILABLE", `Door ${r.doorId} is ${r.state}`);
	if (r.open || r.occupied || r.pending) return refuse("DOOR_NOT_AVAILABLE", `Door ${r.doorId} is not free (${r.open ? "open" : r.occupied ? "occupied" : "busy"})`);
	return next(r, { state: "reserved", orderId, reservedUntil: until }, now);
}

/** The order lets go of the door (cancelled, expired, or done). */
export function release(r: DoorRecord, orderId: string, now: number): Outcome {
	if (r.orderId !== orderId) {
		if (r.state === "available" || r.orderId === null) return same(r); // already released (a repeat)
		return refuse("DOOR_HELD_BY_ANOTHER_ORDER", `Door ${r.doorId} is held by another order`);
	}
	if (r.state === "occupied" && r.occupied) return refuse("DOOR_OCCUPIED", `Door ${r.doorId} still holds the bag`);
	return next(r, { state: r.state === "fault" ? "fault" : "available", orderId: null, reservedUntil: null }, now);
}

export function disable(r: DoorRecord, now: number): Outcome {
	if (r.state === "disabled") return same(r);
	if (r.orderId) return refuse("DOOR_IN_USE", `Door ${r.doorId} is held by an order`);
	return next(r, { state: "disabled", reservedUntil: null }, now);
}

/** Enable a disabled door, or clear a fault once an operator has looked at it. */
export function enable(r: DoorRecord, now: number): Outcome {
	if (r.state !== "disabled" && r.state !== "fault") return same(r);
	return next(r, { state: r.orderId ? (r.occupied ? "occupied" : "reserved") : "available", fault: null }, now);
}

/**
 * Before sending an open: may it be sent, and with which cmdId? A repeat for
 * the same order while its command is in flight (or unknown) reuses that cmdId
 * — the cabinet then re-acks instead of unlocking twice.
 */
export function beginOpen(
	r: DoorRecord, req: { purpose: OpenPurpose; orderId: string | null; cmdId: string; notAfter: number }, now: number,
): Outcome & { cmdId?: string } {
	if (r.pending) {
		if (r.pending.purpose === req.purpose && r.pending.orderId === req.orderId) {
			// The same request again: the same command again (fresh deadline, same cmdId).
			const o = next(r, { pending: { ...r.pending, notAfter: req.notAfter, unknown: false } }, now);
			return { ...o, cmdId: r.pending.cmdId };
		}
		return refuse("DOOR_BUSY", `Door ${r.doorId} has a command in flight`);
	}
	if (req.purpose !== "operator") {
		if (r.orderId !== req.orderId) return refuse("DOOR_NOT_HELD", `Door ${r.doorId} is not held by this order`);
		if (req.purpose === "deposit" && r.state !== "reserved") return refuse("INVALID_DOOR_STATE", `Door ${r.doorId} is ${r.state}, not reserved`);
		if (req.purpose === "pickup" && r.state !== "occupied") return refuse("INVALID_DOOR_STATE", `Door ${r.doorId} is ${r.state}, not occupied`);
	}
	const pending: PendingOpen = { cmdId: req.cmdId, purpose: req.purpose, orderId: req.orderId, sentAt: now, notAfter: req.notAfter, unknown: false };
	return { ...next(r, { pending }, now), cmdId: req.cmdId };
}

export type AckResult = { ok: true } | { ok: false; error: string };

/** The cabinet's ack for the pending command. */
export function onAck(r: DoorRecord, cmdId: string, result: AckResult, now: number): Outcome {
	if (!r.pending || r.pending.cmdId !== cmdId) return same(r); // a late or repeated ack
	if (result.ok) return next(r, { pending: null, unlockedAt: now }, now);
	switch (result.error) {
		case "JAMMED":
			return next(r, { pending: null, state: "fault", fault: "jammed" }, now, [{ event: "anomaly", anomaly: "jammed", detail: { cmdId } }]);
		case "HARDWARE_FAULT":
		case "NO_SUCH_DOOR":
			return next(r, { pending: null, state: "fault", fault: result.error.toLowerCase() }, now, [
				{ event: "anomaly", anomaly: "hardware_fault", detail: { cmdId, error: result.error } },
			]);
		default: // STALE_EPOCH, EXPIRED, BUSY: it did not run; the caller may try again with a new command
			return next(r, { pending: null }, now);
	}
}

/** No ack by the deadline: the outcome is unknown until a report settles it. */
export function onAckTimeout(r: DoorRecord, cmdId: string, now: number): Outcome {
	if (!r.pending || r.pending.cmdId !== cmdId || r.pending.unknown) return same(r);
	return next(r, { pending: { ...r.pending, unknown: true } }, now, [{ event: "anomaly", anomaly: "command_unknown", detail: { cmdId } }]);
}

/**
 * What the cabinet reports about this door (a state snapshot or an event):
 * reconcile it with what the platform expects.
 */
export function onReport(r: DoorRecord, report: { open: boolean; occupied?: boolean; forced?: boolean }, now: number): Outcome {
	const effects: DoorEffect[] = [];
	const patch: Partial<DoorRecord> = {};
	const occupied = report.occupied ?? r.occupied;
	let pending = r.pending;
	if (report.open && !r.open) {
		patch.openSince = now;
		patch.openAlerted = false;
		patch.lastOpenedAt = now;
		// Opened with an open command in flight (acked or not), or just after an acked unlock: that command ran.
		const commanded = !!pending || (r.unlockedAt !== null && now - r.unlockedAt <= COMMAND_WINDOW_MS);
		pending = null;
		patch.unlockedAt = null;
		if (report.forced || !commanded) effects.push({ event: "anomaly", anomaly: "forced_open" });
	}
	if (!report.open && pending?.unknown && now > pending.notAfter && !(r.lastOpenedAt !== null && r.lastOpenedAt >= pending.sentAt)) {
		pending = null; // closed, not opened since it was sent, and past its deadline: it never ran
	}
	if (!report.open && r.open) {
		patch.openSince = null;
		patch.openAlerted = false;
		if (r.orderId) effects.push({ event: "closed", detail: { orderId: r.orderId, occupied } });
	}
	// Decided on what the door holds once closed, not on seeing it close: a report may be
	// missed (an owner died with it), and the next snapshot must still tell a bag went in or out.
	if (!report.open && r.state === "reserved" && occupied) {
		patch.state = "occupied";
		patch.reservedUntil = null;
		effects.push({ event: "deposited", detail: { orderId: r.orderId } });
	} else if (!report.open && r.state === "occupied" && !occupied) {
		effects.push({ event: "pickedUp", detail: { orderId: r.orderId } });
		patch.state = "available";
		patch.orderId = null;
	}
	// A bag nobody holds the door for (left behind, or the order's record was lost with the store):
	// the door is not free, and operators must look. Taking the bag out frees it again (above).
	if (occupied && !report.open && r.state === "available") {
		patch.state = "occupied";
		effects.push({ event: "anomaly", anomaly: "unexpected_occupied" });
	}
	patch.open = report.open;
	patch.occupied = occupied;
	patch.pending = pending;
	const unchanged = patch.open === r.open && patch.occupied === r.occupied && patch.pending === r.pending && patch.state === undefined && effects.length === 0;
	return unchanged ? same(r) : next(r, patch, now, effects);
}

/** An opening within this long after an acked unlock is that command's, not a forced one. */
const COMMAND_WINDOW_MS = 60_000;

/** The cabinet says a door jammed, or raised a hardware alarm on it. */
export function onAlarm(r: DoorRecord, kind: "jammed" | "tamper" | "power_loss" | "sensor_fault", now: number): Outcome {
	const effects: DoorEffect[] = [{ event: "anomaly", anomaly: kind }];
	if (kind === "jammed" || kind === "sensor_fault") return next(r, { state: r.state === "disabled" ? "disabled" : "fault", fault: kind }, now, effects);
	return { ok: true, record: r, effects };
}

/** Durable timers: when this door next needs attention (null = never). */
export function nextDue(r: DoorRecord, openTooLongMs: number): number | null {
	const due: number[] = [];
	if (r.state === "reserved" && r.reservedUntil !== null && !r.open && !r.pending) due.push(r.reservedUntil);
	if (r.open && r.openSince !== null && !r.openAlerted) due.push(r.openSince + openTooLongMs);
	if (r.pending && !r.pending.unknown) due.push(r.pending.notAfter);
	return due.length ? Math.min(...due) : null;
}

/** Runs the timers that are due. */
export function onTimer(r: DoorRecord, now: number, openTooLongMs: number): Outcome {
	if (r.pending && !r.pending.unknown && now > r.pending.notAfter) return onAckTimeout(r, r.pending.cmdId, now);
	if (r.state === "reserved" && r.reservedUntil !== null && now >= r.reservedUntil && !r.open && !r.pending) {
		return next(r, { state: "available", orderId: null, reservedUntil: null }, now, [{ event: "reservationExpired", detail: { orderId: r.orderId } }]);
	}
	if (r.open && r.openSince !== null && !r.openAlerted && now - r.openSince >= openTooLongMs) {
		return next(r, { openAlerted: true }, now, [{ event: "anomaly", anomaly: "door_left_open", detail: { openSince: r.openSince } }]);
	}
	return same(r);
}

/** Is the record free of work, so its actor may be passivated? */
export const isQuiet = (r: DoorRecord) => !r.pending && !r.open && r.state !== "reserved" && !r.forOrders?.length;

/** Door events the orders service must acknowledge (they carry an order id). */
export const ORDER_EVENTS: ReadonlySet<DoorEventName> = new Set(["deposited", "pickedUp", "reservationExpired", "closed"]);
