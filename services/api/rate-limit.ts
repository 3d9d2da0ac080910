/**
 * Fixed-window rate limits over a `CounterStore` (memory, or Redis so that
 * every gateway replica counts against the same budget).
 */
import type { CounterStore } from "../../lib/counters";

export interface LimitResult {
	allowed: boolean;
	limit: number;
	remaining: number;
	/** Seconds until the window resets. */
	resetSec: number;
}

export class RateLimiter {
	constructor(private readonly store: CounterStore, private readonly clock: () => number = Date.now) {}

	async take(key: string, limit: number, windowMs: number): Promise<LimitResult> {
		const now = this.clock();
		const state = await this.store.hit(`rl:${key}`, windowMs, now);
		return {
			allowed: state.count <= limit,
			limit,
			remaining: Math.max(0, limit - state.count),
			resetSec: Math.max(1, Math.ceil((state.expiresAt - now) / 1000)),
		};
	}
}
