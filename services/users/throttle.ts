/**
 * Sign-in throttling. An attempt is reserved before the password is checked,
 * in one atomic step per counter, so parallel attempts cannot all pass a
 * check made before any of them was counted:
 * - per account: after `slowAfter` attempts each further one must wait twice
 *   as long as the one before (a pace slot that only one attempt can take);
 *   past `lockAfter` the account is locked for `lockMs`;
 * - per IP, across accounts: past `ipLockAfter` the IP is locked.
 * A successful sign-in clears the account's count and gives the IP its
 * attempt back. The counts live in memory or, with several users replicas,
 * in Redis (lib/rate-limits.ts).
 */
import type { LoginThrottleConfig } from "../../config";
import { tryConsume, type LimiterFactory } from "../../lib/rate-limits";

export type ThrottleDecision =
	| { allowed: true }
	| { allowed: false; retryAfterMs: number; reason: "account_locked" | "account_slowed" | "ip_locked" };

/** The wait an account's next attempt owes after its `attempt`-th (1-based) in a row; 0 below the threshold. */
export function paceAfter(attempt: number, cfg: LoginThrottleConfig): number {
	if (attempt < cfg.slowAfter) return 0;
	return Math.min(1000 * 2 ** (attempt - cfg.slowAfter), cfg.maxDelayMs);
}

export class LoginThrottle {
	private readonly account;
	private readonly ip;
	private readonly pace;

	constructor(factory: LimiterFactory, private readonly cfg: LoginThrottleConfig) {
		this.account = factory.create({ name: "login-acct", points: cfg.lockAfter, durationMs: cfg.lockMs, blockMs: cfg.lockMs });
		this.ip = factory.create({ name: "login-ip", points: cfg.ipLockAfter, durationMs: cfg.lockMs, blockMs: cfg.lockMs });
		// One attempt per pace slot; the slot's length is set by the attempt that takes it.
		this.pace = factory.create({ name: "login-pace", points: 1, durationMs: 1000 });
	}

	/** Reserves one attempt for `login` from `ip`; the password may be checked only when allowed. */
	async reserve(login: string, ip: string | undefined): Promise<ThrottleDecision> {
		const key = login.toLowerCase();
		if (ip) {
			const byIp = await tryConsume(this.ip, ip);
			if (!byIp.allowed) return { allowed: false, retryAfterMs: byIp.res.msBeforeNext, reason: "ip_locked" };
		}
		const acct = await tryConsume(this.account, key);
		if (!acct.allowed) return { allowed: false, retryAfterMs: acct.res.msBeforeNext, reason: "account_locked" };
		const wait = paceAfter(acct.res.consumedPoints, this.cfg);
		if (wait > 0) {
			const slot = await tryConsume(this.pace, key, 1, { customDuration: Math.ceil(wait / 1000) });
			if (!slot.allowed) {
				// Not checked, so not counted: give the attempt back.
				await Promise.all([this.account.reward(key, 1), ip ? this.ip.reward(ip, 1) : undefined]);
				return { allowed: false, retryAfterMs: slot.res.msBeforeNext, reason: "account_slowed" };
			}
		}
		return { allowed: true };
	}

	/** The reserved attempt succeeded: the account starts afresh and the IP gets its attempt back. */
	async succeeded(login: string, ip: string | undefined): Promise<void> {
		const key = login.toLowerCase();
		await Promise.all([this.account.delete(key), this.pace.delete(key), ip ? this.ip.reward(ip, 1) : undefined]);
	}
}
