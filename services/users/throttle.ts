/**
 * Login throttling: repeated failures for one account, or from one IP, first
 * slow down (each further attempt must wait twice as long as the one before)
 * and then lock for a while. The decision is pure; the counts live in a
 * `CounterStore` (memory, or Redis when users run as several replicas).
 */
import type { LoginThrottleConfig } from "../../config";
import type { CounterState, CounterStore } from "../../lib/counters";

export type ThrottleDecision =
	| { allowed: true }
	| { allowed: false; retryAfterMs: number; reason: "account_locked" | "account_slowed" | "ip_locked" };

export function decideLogin(
	account: CounterState | null,
	ip: CounterState | null,
	now: number,
	cfg: LoginThrottleConfig,
): ThrottleDecision {
	if (ip && ip.count >= cfg.ipLockAfter) {
		return { allowed: false, retryAfterMs: ip.expiresAt - now, reason: "ip_locked" };
	}
	if (!account) return { allowed: true };
	if (account.count >= cfg.lockAfter) {
		return { allowed: false, retryAfterMs: account.expiresAt - now, reason: "account_locked" };
	}
	if (account.count >= cfg.slowAfter) {
		const wait = Math.min(1000 * 2 ** (account.count - cfg.slowAfter), cfg.maxDelayMs);
		const readyAt = account.lastAt + wait;
		if (now < readyAt) return { allowed: false, retryAfterMs: readyAt - now, reason: "account_slowed" };
	}
	return { allowed: true };
}

export class LoginThrottle {
	constructor(
		private readonly store: CounterStore,
		private readonly cfg: LoginThrottleConfig,
		private readonly clock: () => number = Date.now,
	) {}

	private static accountKey(login: string) {
		return `login:acct:${login.toLowerCase()}`;
	}
	private static ipKey(ip: string) {
		return `login:ip:${ip}`;
	}

	async check(login: string, ip: string | undefined): Promise<ThrottleDecision> {
		const now = this.clock();
		const [account, byIp] = await Promise.all([
			this.store.get(LoginThrottle.accountKey(login), now),
			ip ? this.store.get(LoginThrottle.ipKey(ip), now) : Promise.resolve(null),
		]);
		return decideLogin(account, byIp, now, this.cfg);
	}

	async recordFailure(login: string, ip: string | undefined): Promise<void> {
		const now = this.clock();
		await Promise.all([
			this.store.hit(LoginThrottle.accountKey(login), this.cfg.lockMs, now, true),
			ip ? this.store.hit(LoginThrottle.ipKey(ip), this.cfg.lockMs, now, true) : undefined,
		]);
	}

	async recordSuccess(login: string): Promise<void> {
		await this.store.clear(LoginThrottle.accountKey(login));
	}
}
