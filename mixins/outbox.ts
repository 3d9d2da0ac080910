/**
 * A transactional outbox over one repository document, without transactions:
 * a record and the deliveries its change causes are written in ONE document
 * update (`$set` the change, `$push` the deliveries), so they hold together on
 * NeDB and on MongoDB alike. A relay then delivers each item — a call to an
 * idempotent action of another service, acknowledged by its answer — and pulls
 * it from the document only afterwards. A crash between the write and the
 * delivery, or a consumer that is down, only delays it: the relay's sweep finds
 * documents with items left and delivers them again. Consumers dedupe by the
 * item id (`alreadyApplied`), so "at least once" is "exactly once" in effect.
 */
import type { Repository } from "./repository";

export interface OutboxItem {
	/** Unique per delivery; the consumer dedupes by it. */
	id: string;
	/** The action that receives it. */
	action: string;
	params: Record<string, unknown>;
	at: number;
}

export interface OutboxFields {
	_id: string;
	outbox?: OutboxItem[];
	/**
	 * Present only while the outbox holds items (a sparse index): what the sweep looks for. Absent, not
	 * null, otherwise: NeDB keeps one list per indexed value and scans it on every update.
	 */
	outboxAt?: number;
}

/** Fields to declare on an entity that carries an outbox. */
export const OUTBOX_FIELDS = { outbox: "array", outboxAt: "number" } as const;

/** `update` plus the deliveries, as one document update. */
export function withOutbox(update: Record<string, unknown>, items: OutboxItem[], now = Date.now()): Record<string, unknown> {
	if (!items.length) return update;
	const set = (update.$set as Record<string, unknown> | undefined) ?? {};
	const push = (update.$push as Record<string, unknown> | undefined) ?? {};
	return { ...update, $set: { ...set, outboxAt: now }, $push: { ...push, outbox: { $each: items } } };
}

/**
 * The relay's rule, for any outbox: deliver items oldest first, drop each only
 * once its delivery answered, stop at the first failure (the rest keep their
 * order for the next try). True when all were delivered. The door actors use
 * it for their records' events to orders (their records live in the door
 * store, not a repository); OutboxRelay for repository documents.
 */
export async function deliverInOrder<T>(items: readonly T[], deliver: (item: T) => Promise<unknown>, delivered: (item: T) => Promise<unknown> | unknown): Promise<boolean> {
	for (const item of items) {
		await deliver(item);
		await delivered(item);
	}
	return true;
}

export interface RelayOptions<D extends OutboxFields> {
	repo: Repository<D>;
	deliver(item: OutboxItem): Promise<unknown>;
	/** How often documents with undelivered items are looked for. */
	sweepEveryMs?: number;
	batch?: number;
	logger?: { warn(...args: unknown[]): void };
}

export class OutboxRelay<D extends OutboxFields> {
	private timer?: NodeJS.Timeout;
	private sweeping?: Promise<void>;
	/** Documents being relayed right now (one relay per document keeps their order). */
	private readonly busy = new Set<string>();

	constructor(private readonly opts: RelayOptions<D>) {}

	/** Delivers a document's items in order; stops at the first failure (the sweep tries again). */
	async relay(doc: D): Promise<void> {
		if (this.busy.has(doc._id)) return;
		this.busy.add(doc._id);
		try {
			await deliverInOrder(doc.outbox ?? [], item => this.opts.deliver(item), item => this.opts.repo.updateWhere({ _id: doc._id }, { $pull: { outbox: { id: item.id } } }));
			await this.opts.repo.updateWhere({ _id: doc._id, outbox: { $size: 0 } }, { $unset: { outboxAt: true } });
		} catch (err) {
			this.opts.logger?.warn(`Outbox of ${doc._id}: delivery failed, kept for the next try (${(err as Error).message})`);
		} finally {
			this.busy.delete(doc._id);
		}
	}

	/** Relays the document with this id as it is stored now. */
	async relayById(id: string): Promise<void> {
		const doc = await this.opts.repo.findById(id);
		if (doc?.outbox?.length) await this.relay(doc);
	}

	/** Finds documents with undelivered items and relays them. */
	sweep(): Promise<void> {
		this.sweeping ??= (async () => {
			const docs = await this.opts.repo.find({ query: { outboxAt: { $exists: true } }, sort: "outboxAt", limit: this.opts.batch ?? 200 });
			for (const doc of docs) await this.relay(doc);
		})()
			.catch(err => this.opts.logger?.warn(`Outbox sweep failed: ${(err as Error).message}`))
			.finally(() => (this.sweeping = undefined));
		return this.sweeping;
	}

	start(): void {
		this.timer = setInterval(() => void this.sweep(), this.opts.sweepEveryMs ?? 2000);
		void this.sweep();
	}

	async stop(): Promise<void> {
		clearInterval(this.timer);
		await this.sweeping;
	}
}

/**
 * A consumer's dedupe: the ids it applied, kept on its own document (the last
 * `keep`). Check `alreadyApplied` before, and add the id with `appliedUpdate`
 * in the same update that applies the item.
 */
export const alreadyApplied = (doc: { applied?: string[] }, id: string) => !!doc.applied?.includes(id);
export const appliedUpdate = (id: string, keep = 50) => ({ $push: { applied: { $each: [id], $slice: -keep } } });
