/**
 * The door actors' contract, as every caller sees it: the states a door can
 * be in, the answer of a door action, and the params of the actions that other
 * services call (through lib/door-client.ts `callDoors`). The actors' own
 * logic stays in actors/.
 */
import type { Size } from "./catalog";

export const DOOR_STATES = ["available", "reserved", "occupied", "fault", "disabled"] as const;
export type DoorState = (typeof DOOR_STATES)[number];

/** A door as a door action answers it (GET /cabinets/:id's live part, doors.get). */
export interface DoorView {
	id: string;
	no: number;
	size: string;
	state: DoorState;
	open: boolean;
	occupied: boolean;
	orderId: string | null;
	reservedUntil: string | null;
	version: number;
}

/** doors.cabinet */
export interface CabinetLiveView {
	id: string;
	online: boolean;
	lastSeenAt: string | null;
	epoch: number;
	doors: DoorView[];
}

/** doors.cabinets: per cabinet its live view, or the error asking for it alone would have thrown. */
export interface CabinetsAnswer {
	cabinets: ({ id: string; live: CabinetLiveView; error?: undefined } | { id: string; live?: undefined; error: { type: string; message: string; heldBy?: string } })[];
}

/**
 * doors.links (one node): the cabinets it holds, `[id, online 1/0, lastSeenAt ms (0 = not heard
 * since this node took it)]`, in id order; `next` continues after that id (null = done).
 */
export interface LinksAnswer {
	nodeID: string;
	cabinets: [string, 0 | 1, number][];
	next: string | null;
}

export interface ReserveParams { doorId: string; orderId: string; ttlSec?: number }
export interface ReserveAnyParams { cabinetId: string; size: Size; orderId: string; ttlSec?: number }
export interface ReleaseParams { doorId: string; orderId: string }
export interface OpenParams { doorId: string; orderId: string; purpose: "deposit" | "pickup" }
/** doors.report: whether the message was applied, or why it was dropped. */
export type ReportAnswer = { applied: true } | { applied: false; dropped: "malformed" | "unknown cabinet" };

/** A door event of an order, delivered to orders.applyDoorEvent until acknowledged. */
export interface OrderDoorEvent {
	/** `{doorId}:{version}:{event}`: the same event delivered again has the same id. */
	eventId: string;
	event: "deposited" | "pickedUp" | "reservationExpired" | "closed";
	doorId: string;
	cabinetId: string;
	orderId: string;
	/** The door record's version that caused it. */
	version: number;
	at: number;
	/** For `closed`: whether the bag is in the door. */
	occupied?: boolean;
}
