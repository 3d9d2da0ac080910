/**
 * Commands waiting for their ack, by cmdId, each with the door it named (an
 * ack for another door is not its answer). A wait ends with the ack, or with
 * "timeout" at its deadline or when the host stops commanding the cabinet.
 */
import type { AckResult } from "./door-machine";

type Waiter = (r: AckResult | "timeout") => void;

export class AckWaiters {
	private readonly waiting = new Map<string, { door: number; fns: Waiter[] }>();
	/** Waits under way; each ends by its command's deadline at the latest. */
	private readonly inFlight = new Set<Promise<unknown>>();

	get size(): number {
		return this.waiting.size;
	}

	/** The door the command `cmdId` named, if someone waits for its ack. */
	doorOf(cmdId: string): number | undefined {
		return this.waiting.get(cmdId)?.door;
	}

	wait(cmdId: string, door: number, ms: number): Promise<AckResult | "timeout"> {
		const waiting = new Promise<AckResult | "timeout">(resolve => {
			const timer = setTimeout(() => {
				const w = this.waiting.get(cmdId);
				if (w) {
					w.fns = w.fns.filter(fn => fn !== done);
					if (!w.fns.length) this.waiting.delete(cmdId);
				}
				resolve("timeout");
			}, ms);
			const done: Waiter = r => {
				clearTimeout(timer);
				resolve(r);
			};
			const w = this.waiting.get(cmdId);
			if (w) w.fns.push(done);
			else this.waiting.set(cmdId, { door, fns: [done] });
		});
		this.inFlight.add(waiting);
		void waiting.then(() => this.inFlight.delete(waiting));
		return waiting;
	}

	/** Hands the ack to whoever waits for it; false when nobody does. */
	settle(cmdId: string, result: AckResult): boolean {
		const w = this.waiting.get(cmdId);
		if (!w) return false;
		this.waiting.delete(cmdId);
		for (const fn of w.fns) fn(result);
		return true;
	}

	/** Every wait ends now, as a timeout (the outcome is then settled from reports). */
	failAll(): void {
		for (const { fns } of this.waiting.values()) for (const fn of fns) fn("timeout");
		this.waiting.clear();
	}

	/** Resolves once the waits under way have ended. */
	async drain(): Promise<void> {
		await Promise.all(this.inFlight);
	}
}
