/**
 * Enforces each action's declared `auth` rule for calls that arrive from the
 * HTTP gateway (the gateway checks the same rule before forwarding; this is
 * the second lock, on the node that owns the data). Internal calls between
 * services are trusted: the mesh is the trust boundary.
 */
import type { Context, Middleware } from "moleculer";
import type { AppMeta } from "../types/auth";
import { accessRuleOf, checkAccess } from "./access";

export const GATEWAY_SERVICE = "api";

export const AccessMiddleware: Middleware = {
	name: "Access",
	localAction(next: (ctx: Context) => Promise<unknown>, action: any) {
		const rule = accessRuleOf(action);
		return function accessGuard(ctx: Context<unknown, AppMeta>) {
			// Only the hop from the gateway carries the outside caller's rights.
			if (ctx.caller === GATEWAY_SERVICE && ctx.meta.viaGateway) {
				const denied = checkAccess(rule, ctx.meta.user);
				if (denied) return Promise.reject(denied);
			}
			return next(ctx);
		};
	},
};
