/**
 * The life of an order (API.md "Storing a bag"), pure: every transition takes
 * the order as it is and answers the fields to change, or why it may not
 * happen. The service writes a transition with a compare-and-set on the
 * order's version, so two transitions can never both apply to the same
 * version.
 *
 *   reserved → depositing → stored → paying → paid → picking_up → completed
 *   reserved → cancelled | expired
 *
 * The door drives what only the door can know: a bag went in (stored), the
 * bag came out (completed), the door closed without the bag going in (back
 * to reserved) or without it coming out (back to paid, an anomaly). Door
 * events may arrive late, twice or out of order: each names the door
 * record's version, and an order ignores versions it has already seen.
 */
import type { SizePrice } from "../../domain/catalog";

export const ORDER_STATUSES = ["reserved", "depositing", "stored", "paying", "paid", "picking_up", "completed", "cancelled", "expired"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Statuses in which the door holds something for the order (the orders service checks them with the door on start). */
export const DOOR_DEPENDENT: readonly OrderStatus[] = ["reserved", "depositing", "stored", "paying", "paid", "picking_up"];
export const FINAL: readonly OrderStatus[] = ["completed", "cancelled", "expired"];

export interface OrderDoc {
	_id: string;
	userId: string;
	pointId: string;
	merchantId: string;
	cabinetId: string;
	doorId: string;
	doorNo: number;
	size: string;
	status: OrderStatus;
	/** Grows with every change: the compare-and-set token. */
	version: number;
	/** The tariff when the order was made (a later change of the point's pricing does not touch it). */
	pricing: SizePrice;
	/** The merchant's commission rate when the order was made. */
	commissionRate: number;
	reservedUntil: Date;
	/** When the door closed on the bag: storage time starts here. */
	storedFrom: Date | null;
	paymentId: string | null;
	/** What checkout charged (or is charging). */
	amountFen: number | null;
	paidAt: Date | null;
	completedAt: Date | null;
	endedAt: Date | null;
	/** The highest door-record version applied (late or repeated door events are ignored). */
	doorVersion: number;
	/** Something a person should look at (a pickup door closed on the bag, …), newest last. */
	anomalies: string[];
	createdAt: Date;
	updatedAt: Date;
}

export type Change = { ok: true; set: Partial<OrderDoc> } | { ok: false; status: 409; type: string; message: string };

const refuse = (type: string, message: string): Change => ({ ok: false, status: 409, type, message });
const to = (set: Partial<OrderDoc>): Change => ({ ok: true, set });
const notIn = (o: OrderDoc, what: string) => refuse("INVALID_ORDER_STATE", `Order ${o._id} is ${o.status}; ${what}`);

/** The door opened for the deposit. */
export function depositOpened(o: OrderDoc): Change {
	if (o.status === "depositing") return to({});
	if (o.status !== "reserved") return notIn(o, "the door opens for a deposit only while it is reserved");
	return to({ status: "depositing" });
}

/** The door opened for the pickup. */
export function pickupOpened(o: OrderDoc): Change {
	if (o.status === "picking_up") return to({});
	if (o.status !== "paid") return notIn(o, "the door opens for a pickup once it is paid");
	return to({ status: "picking_up" });
}

export function cancel(o: OrderDoc, now: Date): Change {
	if (o.status === "cancelled") return to({});
	if (o.status !== "reserved") return notIn(o, "only a reservation without a bag in can be cancelled");
	return to({ status: "cancelled", endedAt: now });
}

/** Checkout started a payment of `amountFen` (0: nothing to pay, paid at once). */
export function checkout(o: OrderDoc, paymentId: string | null, amountFen: number, now: Date): Change {
	if (o.status !== "stored" && o.status !== "paying") return notIn(o, "checkout is for a stored bag");
	if (amountFen === 0) return to({ status: "paid", amountFen: 0, paymentId: null, paidAt: now });
	return to({ status: "paying", paymentId, amountFen });
}

/** The payment was captured. */
export function paid(o: OrderDoc, paymentId: string, now: Date): Change {
	if (o.paymentId !== paymentId) return refuse("PAYMENT_MISMATCH", `Payment ${paymentId} is not order ${o._id}'s current payment`);
	if (o.status === "paid" || o.status === "picking_up" || o.status === "completed") return to({});
	if (o.status !== "paying" && o.status !== "stored") return notIn(o, "only a stored bag can be paid for");
	return to({ status: "paid", paidAt: now });
}

export type DoorSignal =
	| { kind: "deposited"; at: Date }
	| { kind: "pickedUp"; at: Date }
	| { kind: "reservationExpired"; at: Date }
	/** The door closed after an opening: whether the bag is in it. */
	| { kind: "closed"; occupied: boolean; at: Date };

/**
 * What the door's news means for the order. Unchanged (`{}`) when it says
 * nothing new; never a refusal (the door is the truth about the door).
 */
export function onDoor(o: OrderDoc, signal: DoorSignal): Partial<OrderDoc> {
	switch (signal.kind) {
		case "deposited":
			// Also straight from reserved: the door can close on the bag before the open call returned.
			if (o.status === "reserved" || o.status === "depositing") return { status: "stored", storedFrom: signal.at };
			return {};
		case "pickedUp":
			if (o.status === "paid" || o.status === "picking_up") return { status: "completed", completedAt: signal.at, endedAt: signal.at };
			return {};
		case "reservationExpired":
			if (o.status === "reserved") return { status: "expired", endedAt: signal.at };
			return {};
		case "closed":
			if (o.status === "depositing" && !signal.occupied) return { status: "reserved" }; // nothing went in: try again
			if (o.status === "picking_up" && signal.occupied) {
				return { status: "paid", anomalies: [...o.anomalies.slice(-19), `pickup door closed with the bag still in (${signal.at.toISOString()})`] };
			}
			return {};
	}
}

/** What the door looks like, as the door actor answers it (doors.get). */
export interface DoorLook {
	state: string;
	orderId: string | null;
	open: boolean;
	occupied: boolean;
	version: number;
}

/**
 * An order checked against its door's live state (on start, or when its door
 * events cannot be trusted): the change that makes the order agree with the
 * door, or `reserve` when the door lost a reservation the order still holds.
 */
export function reconcile(o: OrderDoc, door: DoorLook, now: Date): { set: Partial<OrderDoc>; reserveAgain?: boolean } {
	const mine = door.orderId === o._id;
	switch (o.status) {
		case "reserved":
			if (mine) return { set: door.occupied && !door.open ? { status: "stored", storedFrom: now } : {} };
			if (now >= o.reservedUntil) return { set: { status: "expired", endedAt: now } };
			return { set: {}, reserveAgain: door.state === "available" };
		case "depositing":
			if (mine && door.state === "occupied" && !door.open) return { set: { status: "stored", storedFrom: now } };
			if (mine && door.state === "reserved" && !door.open) return { set: { status: "reserved" } };
			if (!mine && !door.open) return { set: now >= o.reservedUntil ? { status: "expired", endedAt: now } : { status: "reserved" }, reserveAgain: door.state === "available" && now < o.reservedUntil };
			return { set: {} };
		case "picking_up":
			if (!mine && !door.occupied && !door.open) return { set: { status: "completed", completedAt: now, endedAt: now } };
			if (mine && door.occupied && !door.open) return { set: { status: "paid" } };
			return { set: {} };
		case "paid":
			// The bag came out while the order was paid (the door's event was lost): done.
			if (!mine && !door.occupied && door.state === "available") return { set: { status: "completed", completedAt: now, endedAt: now } };
			return { set: {} };
		default:
			return { set: {} };
	}
}
