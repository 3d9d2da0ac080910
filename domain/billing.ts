/**
 * The billing service's contract, as orders (and clients) see it. Money is
 * integer fen.
 */
export const PAYMENT_STATUSES = ["pending", "captured", "failed"] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

/** A payment as API.md shows it (checkout's answer). */
export interface PaymentView {
	id: string;
	orderId: string;
	amountFen: number;
	status: PaymentStatus;
	provider: string;
	refundedFen: number;
	createdAt: string;
	capturedAt: string | null;
}

/** billing.createPayment (orders' checkout). */
export interface CreatePaymentParams {
	orderId: string;
	userId: string;
	merchantId: string;
	pointId: string;
	amountFen: number;
	commissionRate: number;
}

/** billing.refund (orders' refund route). */
export interface RefundParams {
	orderId: string;
	paymentId: string;
	/** Omitted: everything not refunded yet. */
	amountFen?: number;
	reason: string;
	/** Who asked (an operator's user id). */
	actorId: string;
	/** One refund per request id: a retried request is not paid twice. */
	requestId: string;
}

export interface RefundView {
	id: string;
	paymentId: string;
	orderId: string;
	amountFen: number;
	reason: string;
	status: "requested" | "done";
	createdAt: string;
}

/** orders.markPaid, delivered from a captured payment's outbox until acknowledged. */
export interface PaymentCapturedNotice {
	/** The outbox item id (the consumer dedupes by it). */
	id: string;
	orderId: string;
	paymentId: string;
	amountFen: number;
	capturedAt: number;
}
