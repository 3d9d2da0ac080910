/**
 * The ledger over a generated day of traffic: every capture and refund
 * balances, the statements add up to the fen, and reconciliation finds
 * exactly the mismatches planted in it.
 */
import { balanced, captureEntries, dayRange, reconcile, refundEntries, settle, shanghaiDay, type LedgerEntry, type PaymentRecord } from "../../services/billing/ledger";
import { commissionFen } from "../../domain/pricing";

let seed = 7;
const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);

describe("a generated day of traffic", () => {
	const day = "2026-12-02";
	const { from } = dayRange(day);
	const merchants = [{ id: "mer_a", rate: 0.1 }, { id: "mer_b", rate: 0.175 }, { id: "mer_c", rate: 0.333 }];
	const payments: PaymentRecord[] = [];
	const entries: LedgerEntry[] = [];
	const expected = new Map(merchants.map(m => [m.id, { gross: 0, commission: 0, refunds: 0 }]));
	for (let i = 0; i < 2000; i++) {
		const m = merchants[rnd(3)];
		const amountFen = 100 + rnd(20_000);
		const at = new Date(from.getTime() + rnd(24 * 3600_000));
		const facts = { paymentId: `pay_${i}`, orderId: `ord_${i}`, merchantId: m.id, amountFen, commissionRate: m.rate };
		const cap = captureEntries(facts, at);
		entries.push(...cap);
		const e = expected.get(m.id)!;
		e.gross += amountFen;
		e.commission += commissionFen(amountFen, m.rate);
		let refunded = 0;
		if (rnd(5) === 0) {
			for (let k = 0; k < 1 + rnd(3) && refunded < amountFen; k++) {
				const r = Math.min(amountFen - refunded, 1 + rnd(amountFen));
				entries.push(...refundEntries(facts, `ref_${i}_${k}`, r, new Date(Math.min(at.getTime() + 60_000, from.getTime() + 24 * 3600_000 - 1))));
				refunded += r;
				e.refunds += r;
				e.commission -= commissionFen(r, m.rate);
			}
		}
		payments.push({ _id: facts.paymentId, status: "captured", amountFen, refundedFen: refunded, capturedAt: at });
	}

	it("every transaction balances, and so does the day", () => {
		for (const txn of new Set(entries.map(e => e.txnId))) expect(balanced(entries.filter(e => e.txnId === txn))).toBe(true);
		expect(balanced(entries)).toBe(true);
		expect(entries.every(e => Number.isInteger(e.debitFen) && Number.isInteger(e.creditFen) && e.debitFen >= 0 && e.creditFen >= 0)).toBe(true);
		expect(entries.every(e => shanghaiDay(e.at) === day)).toBe(true);
	});

	it("statements add up to the fen: gross − commission − refunds = net = the merchant's payable", () => {
		for (const m of merchants) {
			const s = settle(m.id, day, entries);
			const e = expected.get(m.id)!;
			expect(s).toEqual({ merchantId: m.id, date: day, grossFen: e.gross, commissionFen: e.commission, refundsFen: e.refunds, netFen: e.gross - e.commission - e.refunds });
			const payable = entries.filter(x => x.account === `merchant_payable:${m.id}`).reduce((n, x) => n + x.creditFen - x.debitFen, 0);
			expect(s.netFen).toBe(payable);
		}
	});

	it("reconciliation is clean, and finds exactly the mismatches planted", () => {
		expect(reconcile(payments, entries)).toEqual([]);
		const broken = payments.map(p => (p._id === "pay_5" ? { ...p, amountFen: p.amountFen + 1 } : p));
		const missing = [...broken, { _id: "pay_x", status: "captured", amountFen: 500, refundedFen: 0, capturedAt: from }];
		const orphan = [...entries, ...captureEntries({ paymentId: "pay_ghost", orderId: "ord_g", merchantId: "mer_a", amountFen: 10, commissionRate: 0.1 }, from)];
		expect(reconcile(missing, orphan).map(m => [m.kind, m.paymentId]).sort()).toEqual([
			["amount_mismatch", "pay_5"], ["entries_without_payment", "pay_ghost"], ["payment_without_entries", "pay_x"],
		]);
	});
});
