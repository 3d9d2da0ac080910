/**
 * Payment providers behind one interface, the four things a WeChat Pay or
 * Alipay adapter must do: create a payment, verify a notification, query a
 * payment whose notification never came, refund. The platform never trusts
 * the client, only a verified notification or the provider's own answer.
 *
 * The built-in `sandbox` behaves like a real provider: its side of each
 * payment (paid or not, refunds) lives in its own collection, it signs its
 * notifications with SANDBOX_PAY_SECRET (HMAC-SHA256 over the raw body), it
 * answers queries, and refunds are idempotent by refund id.
 */
import crypto from "node:crypto";
import type { Repository } from "../../mixins/repository";
import type { EntityDefinition } from "../../mixins/db.mixin";

export interface ProviderNotification {
	paymentId: string;
	providerTxnId: string;
	amountFen: number;
	status: "success" | "fail";
}

export interface ProviderQuery {
	status: "success" | "pending" | "failed" | "unknown";
	providerTxnId?: string;
	amountFen?: number;
}

export interface PaymentProvider {
	readonly name: string;
	create(p: { paymentId: string; amountFen: number }): Promise<void>;
	/** The notification if its signature over the raw body verifies, else null. */
	verify(rawBody: string, headers: Record<string, string>): ProviderNotification | null;
	query(paymentId: string): Promise<ProviderQuery>;
	/** Idempotent by `refundId`. */
	refund(p: { paymentId: string; refundId: string; amountFen: number }): Promise<void>;
}

export interface SandboxTxnDoc {
	_id: string; // the payment id
	amountFen: number;
	status: "pending" | "success" | "failed";
	providerTxnId: string | null;
	refunds: { id: string; amountFen: number }[];
	createdAt: Date;
}

export const SandboxTxnEntity: EntityDefinition = {
	collection: "sandbox_provider_txns",
	idPrefix: "sbx",
	fields: { amountFen: "number", status: "string", providerTxnId: "string", refunds: "array", createdAt: "date" },
};

export const SANDBOX_SIGNATURE_HEADER = "x-sandbox-signature";

export const sandboxSignature = (secret: string, rawBody: string) => crypto.createHmac("sha256", secret).update(rawBody, "utf8").digest("hex");

function sameHex(a: string, b: string): boolean {
	const ha = crypto.createHash("sha256").update(a).digest();
	const hb = crypto.createHash("sha256").update(b).digest();
	return crypto.timingSafeEqual(ha, hb);
}

export class SandboxProvider implements PaymentProvider {
	readonly name = "sandbox";

	constructor(private readonly secret: string, private readonly txns: Repository<SandboxTxnDoc>) {}

	async create(p: { paymentId: string; amountFen: number }): Promise<void> {
		await this.txns.insert({ _id: p.paymentId, amountFen: p.amountFen, status: "pending", providerTxnId: null, refunds: [], createdAt: new Date() }).catch(err => {
			// A repeat of create for the same payment is fine.
			if ((err as { code?: number; errorType?: string }).errorType !== "uniqueViolated" && (err as { code?: number }).code !== 11000) throw err;
		});
	}

	verify(rawBody: string, headers: Record<string, string>): ProviderNotification | null {
		const given = String(headers[SANDBOX_SIGNATURE_HEADER] ?? "").toLowerCase();
		if (!/^[0-9a-f]{64}$/.test(given) || !sameHex(given, sandboxSignature(this.secret, rawBody))) return null;
		let body: unknown;
		try {
			body = JSON.parse(rawBody);
		} catch {
			return null;
		}
		const b = body as Partial<ProviderNotification>;
		if (typeof b.paymentId !== "string" || typeof b.providerTxnId !== "string" || !Number.isInteger(b.amountFen) || (b.status !== "success" && b.status !== "fail")) return null;
		return { paymentId: b.paymentId, providerTxnId: b.providerTxnId, amountFen: b.amountFen!, status: b.status };
	}

	async query(paymentId: string): Promise<ProviderQuery> {
		const t = await this.txns.findById(paymentId);
		if (!t) return { status: "unknown" };
		return { status: t.status, providerTxnId: t.providerTxnId ?? undefined, amountFen: t.amountFen };
	}

	async refund(p: { paymentId: string; refundId: string; amountFen: number }): Promise<void> {
		const t = await this.txns.findById(p.paymentId);
		if (!t || t.status !== "success") throw new Error(`sandbox: payment ${p.paymentId} was not paid`);
		if (t.refunds.some(r => r.id === p.refundId)) return;
		const refunded = t.refunds.reduce((n, r) => n + r.amountFen, 0);
		if (refunded + p.amountFen > t.amountFen) throw new Error(`sandbox: refund beyond the payment (${refunded} + ${p.amountFen} > ${t.amountFen})`);
		// The platform's outbox asks for one refund of a payment at a time (one relay per document).
		await this.txns.updateWhere({ _id: p.paymentId }, { $push: { refunds: { id: p.refundId, amountFen: p.amountFen } } });
	}

	/**
	 * What the person does in the provider's app: pays. Answers the notification the provider
	 * would send (raw body and signature header), or null when the payment is unknown or not pending.
	 */
	async pay(paymentId: string, amountFen?: number): Promise<{ rawBody: string; headers: Record<string, string> } | null> {
		const t = await this.txns.findById(paymentId);
		if (!t || t.status === "failed") return null;
		const providerTxnId = t.providerTxnId ?? `sbx_${crypto.randomBytes(8).toString("hex")}`;
		if (t.status === "pending") await this.txns.updateWhere({ _id: paymentId, status: "pending" }, { $set: { status: "success", providerTxnId } });
		const rawBody = JSON.stringify({ paymentId, providerTxnId, amountFen: amountFen ?? t.amountFen, status: "success" });
		return { rawBody, headers: { [SANDBOX_SIGNATURE_HEADER]: sandboxSignature(this.secret, rawBody) } };
	}
}
