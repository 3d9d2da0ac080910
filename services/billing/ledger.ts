/**
 * The double-entry ledger, pure. Every capture and every refund becomes a
 * balanced set of entries (debits = credits), with ids derived from what
 * caused them, so writing them twice stores them once. Entries are never
 * changed: a mistake is corrected by a new entry.
 *
 * Accounts:
 * - `provider_clearing`: money the payment provider holds for us;
 * - `merchant_payable:{merchantId}`: what the platform owes the merchant;
 * - `platform_revenue`: the platform's commission.
 *
 * A capture of G with commission C: debit clearing G; credit merchant G − C;
 * credit platform C. A refund of R returns the commission share of R:
 * debit merchant R − Rc; debit platform Rc; credit clearing R.
 */
import { commissionFen } from "../../domain/pricing";

export interface LedgerEntry {
	_id: string;
	/** Groups the entries of one capture or refund. */
	txnId: string;
	kind: "capture" | "refund";
	account: string;
	debitFen: number;
	creditFen: number;
	merchantId: string;
	paymentId: string;
	orderId: string;
	/** When the money moved (the capture or the refund), ms. */
	at: Date;
	createdAt: Date;
}

export interface PaymentFacts {
	paymentId: string;
	orderId: string;
	merchantId: string;
	amountFen: number;
	commissionRate: number;
}

export const CLEARING = "provider_clearing";
export const PLATFORM = "platform_revenue";
export const merchantAccount = (merchantId: string) => `merchant_payable:${merchantId}`;

function entries(txnId: string, kind: LedgerEntry["kind"], p: PaymentFacts, at: Date, lines: [string, number, number][]): LedgerEntry[] {
	const createdAt = new Date();
	return lines
		.filter(([, d, c]) => d !== 0 || c !== 0)
		.map(([account, debitFen, creditFen]) => ({
			_id: `led_${txnId}_${account.replace(/[^a-z0-9_]/gi, "_")}`,
			txnId, kind, account, debitFen, creditFen, merchantId: p.merchantId, paymentId: p.paymentId, orderId: p.orderId, at, createdAt,
		}));
}

export function captureEntries(p: PaymentFacts, at: Date): LedgerEntry[] {
	const c = commissionFen(p.amountFen, p.commissionRate);
	return entries(`${p.paymentId}_capture`, "capture", p, at, [
		[CLEARING, p.amountFen, 0],
		[merchantAccount(p.merchantId), 0, p.amountFen - c],
		[PLATFORM, 0, c],
	]);
}

export function refundEntries(p: PaymentFacts, refundId: string, amountFen: number, at: Date): LedgerEntry[] {
	const c = commissionFen(amountFen, p.commissionRate);
	return entries(`${refundId}_refund`, "refund", p, at, [
		[merchantAccount(p.merchantId), amountFen - c, 0],
		[PLATFORM, c, 0],
		[CLEARING, 0, amountFen],
	]);
}

export const balanced = (list: Pick<LedgerEntry, "debitFen" | "creditFen">[]) =>
	list.reduce((n, e) => n + e.debitFen, 0) === list.reduce((n, e) => n + e.creditFen, 0);

/** The business day of an instant: Asia/Shanghai (UTC+8, no daylight saving), as YYYY-MM-DD. */
export const shanghaiDay = (at: Date) => new Date(at.getTime() + 8 * 3600_000).toISOString().slice(0, 10);
/** The instants a Shanghai business day spans: [from, to). */
export function dayRange(day: string): { from: Date; to: Date } {
	const from = new Date(`${day}T00:00:00.000+08:00`);
	return { from, to: new Date(from.getTime() + 24 * 3600_000) };
}

export interface Settlement {
	merchantId: string;
	date: string;
	grossFen: number;
	commissionFen: number;
	refundsFen: number;
	netFen: number;
}

/** A merchant's statement of one day, from that day's ledger entries of its account and the platform's. */
export function settle(merchantId: string, date: string, dayEntries: LedgerEntry[]): Settlement {
	let grossFen = 0;
	let refundsFen = 0;
	let commission = 0;
	for (const e of dayEntries) {
		if (e.merchantId !== merchantId) continue;
		if (e.account === CLEARING) {
			if (e.kind === "capture") grossFen += e.debitFen;
			else refundsFen += e.creditFen;
		} else if (e.account === PLATFORM) commission += e.creditFen - e.debitFen;
	}
	return { merchantId, date, grossFen, commissionFen: commission, refundsFen, netFen: grossFen - commission - refundsFen };
}

export interface PaymentRecord {
	_id: string;
	status: string;
	amountFen: number;
	refundedFen: number;
	capturedAt: Date | null;
}

export interface Mismatch {
	kind: "payment_without_entries" | "entries_without_payment" | "amount_mismatch" | "unbalanced";
	paymentId: string;
	detail: string;
}

/** Captured payments against the ledger: every capture has balanced entries of its amount, and no entry is an orphan. */
export function reconcile(payments: PaymentRecord[], ledger: LedgerEntry[]): Mismatch[] {
	const out: Mismatch[] = [];
	const byPayment = new Map<string, LedgerEntry[]>();
	for (const e of ledger) (byPayment.get(e.paymentId) ?? byPayment.set(e.paymentId, []).get(e.paymentId)!).push(e);
	const known = new Set(payments.map(p => p._id));
	for (const p of payments) {
		if (p.status !== "captured") continue;
		const mine = byPayment.get(p._id) ?? [];
		const capture = mine.filter(e => e.kind === "capture");
		if (!capture.length) {
			out.push({ kind: "payment_without_entries", paymentId: p._id, detail: `captured ${p.amountFen} fen, no ledger entries` });
			continue;
		}
		const captured = capture.filter(e => e.account === CLEARING).reduce((n, e) => n + e.debitFen, 0);
		if (captured !== p.amountFen) out.push({ kind: "amount_mismatch", paymentId: p._id, detail: `payment ${p.amountFen} fen, ledger ${captured} fen` });
		const refunded = mine.filter(e => e.kind === "refund" && e.account === CLEARING).reduce((n, e) => n + e.creditFen, 0);
		if (refunded !== p.refundedFen) out.push({ kind: "amount_mismatch", paymentId: p._id, detail: `refunded ${p.refundedFen} fen, ledger ${refunded} fen` });
		for (const txn of new Set(mine.map(e => e.txnId))) {
			if (!balanced(mine.filter(e => e.txnId === txn))) out.push({ kind: "unbalanced", paymentId: p._id, detail: `transaction ${txn} does not balance` });
		}
	}
	for (const [paymentId, list] of byPayment) {
		if (!known.has(paymentId)) out.push({ kind: "entries_without_payment", paymentId, detail: `${list.length} entries` });
	}
	return out;
}
