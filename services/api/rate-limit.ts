/**
 * The gateway's request budgets (per IP, per IP on the credential routes, per
 * user): fixed windows counted atomically (lib/rate-limits.ts), shared by
 * every gateway replica when Redis is configured.
 */
import type { RateLimitConfig } from "../../config";
import { tryConsume, type LimiterFactory } from "../../lib/rate-limits";

export interface LimitResult {
	allowed: boolean;
	limit: number;
	remaining: number;
	/** Seconds until the window resets. */
	resetSec: number;
}

export type Budget = "ip" | "credentials" | "user";

export class RateLimits {
	private readonly limiters;

	constructor(factory: LimiterFactory, cfg: RateLimitConfig) {
		const make = (name: string, points: number) => factory.create({ name: `rl-${name}`, points, durationMs: cfg.windowMs });
		this.limiters = { ip: make("ip", cfg.ipPerWindow), credentials: make("cred", cfg.authPerWindow), user: make("user", cfg.userPerWindow) };
	}

	async take(budget: Budget, key: string): Promise<LimitResult> {
		const limiter = this.limiters[budget];
		const { allowed, res } = await tryConsume(limiter, key);
		return { allowed, limit: limiter.points, remaining: res.remainingPoints, resetSec: Math.max(1, Math.ceil(res.msBeforeNext / 1000)) };
	}
}
