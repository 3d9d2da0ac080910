/**
 * Tasks run one at a time per key, in the order they were queued (a door's
 * mailbox, a cabinet's reports, a cabinet's writes). A key is forgotten once
 * its queue is empty, so memory follows activity.
 */
export class KeyedQueue<K = string> {
	private readonly queues = new Map<K, { tail: Promise<unknown>; size: number }>();

	/** Tasks queued or running for `key`. */
	size(key: K): number {
		return this.queues.get(key)?.size ?? 0;
	}

	run<T>(key: K, task: () => Promise<T> | T): Promise<T> {
		const q = this.queues.get(key) ?? { tail: Promise.resolve(), size: 0 };
		q.size++;
		this.queues.set(key, q);
		const result = q.tail.then(task);
		q.tail = result
			.catch(() => undefined)
			.finally(() => {
				if (--q.size === 0 && this.queues.get(key) === q) this.queues.delete(key);
			});
		return result;
	}

	/** Resolves once every task queued so far has ended (successfully or not). */
	async drain(): Promise<void> {
		await Promise.all([...this.queues.values()].map(q => q.tail));
	}
}
