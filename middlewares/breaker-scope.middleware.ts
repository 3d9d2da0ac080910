/**
 * Keeps each circuit breaker to its own endpoint. Moleculer's breaker counts
 * every failure an action's handler throws that was created on the node it
 * ran on — including "no answer" errors of the calls that handler made
 * itself. So when the doors nodes are unreachable, the gateway's own
 * `merchants.openDoor` (which calls them) was counted as failing, its breaker
 * opened, and every cabinet was refused; `doors.report` on a healthy node went
 * the same way when merchants was down.
 *
 * This middleware sits inside the breaker and marks such relayed failures: a
 * timeout or missing endpoint of another action than the one wrapped here.
 * The breaker's check (lib/mesh-errors.ts) leaves marked errors alone.
 */
import type { Context, Middleware } from "moleculer";
import { markRelayed, NO_ANSWER_TYPES } from "../lib/mesh-errors";

function wrap(next: (ctx: Context) => Promise<unknown>, action: { name: string }) {
	return function scopeBreaker(ctx: Context) {
		return next(ctx).catch((err: any) => {
			if (err && NO_ANSWER_TYPES.has(err.type) && err.data?.action !== undefined && err.data.action !== action.name) markRelayed(err);
			throw err;
		});
	};
}

export const BreakerScopeMiddleware: Middleware = {
	name: "BreakerScope",
	localAction: wrap,
	remoteAction: wrap,
} as Middleware;
