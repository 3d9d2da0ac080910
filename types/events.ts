/**
 * Event payloads, typed once for emitters and consumers. Names follow
 * `<service>.<entity>.<pastTense>`.
 */
import type { DoorEntry, PointView, Size } from "../domain/catalog";
import type { DoorState } from "../domain/doors";

/** users.session.revoked */
export interface SessionRevokedEvent {
	sid: string;
	userId: string;
	reason: string;
	/** Until when access tokens of this session could still verify (ms). */
	until: number;
}

/** merchants.point.created / merchants.point.updated: the point as it is now. */
export interface PointChangedEvent { point: PointView }
/** merchants.cabinet.registered */
export interface CabinetRegisteredEvent extends PointChangedEvent { cabinet: { id: string; pointId: string; merchantId: string; doors: DoorEntry[] } }
/** merchants.door.updated */
export interface DoorUpdatedEvent extends PointChangedEvent { doorId: string; cabinetId: string; no: number; size: Size; disabled: boolean }

/** What every door event carries. */
export interface DoorEventBase {
	doorId: string;
	cabinetId: string;
	pointId: string;
	merchantId: string;
	no: number;
	size: string;
	/** The door record's version that caused it: consumers dedupe by (doorId, version, event). */
	version: number;
	at: number;
}
/** doors.state.changed (broadcast to every read model) */
export interface DoorStateChangedEvent extends DoorEventBase { state: DoorState; orderId: string | null; open: boolean; occupied: boolean }
/** doors.door.deposited / doors.door.pickedUp / doors.reservation.expired */
export interface DoorOrderEvent extends DoorEventBase { orderId: string | null }
/** doors.anomaly */
export interface DoorAnomalyEvent extends DoorEventBase { kind: string; detail: Record<string, unknown> }
/** doors.cabinet.online / doors.cabinet.offline */
export interface CabinetLinkEvent { cabinetId: string; pointId: string; merchantId: string; reason: string; at: number }
/** doors.open.completed: every open's outcome (unlock failure rates) */
export interface DoorOpenCompletedEvent { cabinetId: string; pointId: string; merchantId: string; doorId: string; ok: boolean; error: string | null; at: number }
/** node.breaker.opened / node.breaker.closed: a circuit breaker on some node (forwarded from `$circuit-breaker.*`) */
export interface BreakerEvent { node: string; target: string; action: string; service: string }
/** billing.payment.stale: a payment pending longer than its limit */
export interface PaymentStaleEvent { paymentId: string; orderId: string; ageMs: number }
/** billing.reconciliation.checked: a day's payments against the ledger */
export interface ReconciliationCheckedEvent { date: string; mismatches: number }
/** orders.refund.proposed */
export interface RefundProposedEvent { orderId: string; paymentId: string | null; amountFen: number | null; reason: string; pointId: string; merchantId: string; cabinetId: string; doorId: string }
/** orders.order.stuck: an order in a passing state past its limit */
export interface OrderStuckEvent { orderId: string; status: string; minutes: number; pointId: string; merchantId: string }
/** orders.order.changed (broadcast to every gateway): an order's status moved, written first */
export interface OrderChangedEvent { id: string; status: string; userId: string; pointId: string; merchantId: string; doorId: string; at: number }
/** alerts.alert.changed (broadcast to every gateway): an alert fired, or a fired one resolved */
export interface AlertChangedEvent {
	id: string;
	name: string;
	severity: string;
	state: "firing" | "resolved";
	labels: Record<string, string>;
	/** ISO times, as GET /alerts shows them. */
	startsAt: string;
	endsAt?: string;
}
