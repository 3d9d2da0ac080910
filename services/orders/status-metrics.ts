/**
 * Order status metrics, without a broker: which status each write enters,
 * and how many orders are in each open status.
 *
 * Every status change of an order is one write that sets `status`: the
 * insert (reserved) or a conditional update (`$set.status`) that matched.
 * They happen in seven places of the service; watching the repository's two
 * write calls counts each of them, and only the writes that landed.
 */
import { DOOR_DEPENDENT, ORDER_STATUSES, type OrderStatus } from "./order-machine";

interface WritableRepo {
	insert(doc: any): Promise<any>;
	updateWhere(query: Record<string, unknown>, update: Record<string, unknown>): Promise<number>;
}

const KNOWN = new Set<string>(ORDER_STATUSES);

/** The status a write enters, if it sets a known one. */
export function statusSetBy(update: Record<string, unknown> | undefined): OrderStatus | null {
	const status = (update?.$set as { status?: unknown } | undefined)?.status;
	return typeof status === "string" && KNOWN.has(status) ? (status as OrderStatus) : null;
}

/** Calls `entered(status, n)` after each write to `repo` that set an order's status. */
export function watchStatusWrites(repo: WritableRepo, entered: (status: OrderStatus, n: number) => void): void {
	const insert = repo.insert.bind(repo);
	const updateWhere = repo.updateWhere.bind(repo);
	repo.insert = async doc => {
		const written = await insert(doc);
		if (typeof doc?.status === "string" && KNOWN.has(doc.status)) entered(doc.status, 1);
		return written;
	};
	repo.updateWhere = async (query, update) => {
		const n = await updateWhere(query, update);
		const status = n > 0 ? statusSetBy(update) : null;
		if (status) entered(status, n);
		return n;
	};
}

/** The statuses the current-orders gauge shows: the open ones (final ones only grow; their rate is the transitions counter's). */
export const OPEN_STATUSES: readonly OrderStatus[] = DOOR_DEPENDENT;

/** Counts the orders in each open status, one count per status (indexed by status in Mongo). */
export async function countOpenOrders(count: (query: Record<string, unknown>) => Promise<number>): Promise<Record<OrderStatus, number>> {
	const out = {} as Record<OrderStatus, number>;
	for (const status of OPEN_STATUSES) out[status] = await count({ status });
	return out;
}
