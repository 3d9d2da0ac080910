/**
 * A 201 answer names what it created in a Location header. moleculer-web
 * warns on every 201 without `ctx.meta.$location`, so each creating action
 * says where its resource lives.
 */
import type { Context } from "moleculer";
import type { AppMeta } from "../types/auth";

/** The REST API's prefix (the gateway mounts the routes under it). */
export const API_PREFIX = "/api/v1";

/** Answer 201 with `Location: /api/v1<path>`. */
export function created(ctx: Context<unknown, AppMeta>, path: string): void {
	ctx.meta.$statusCode = 201;
	ctx.meta.$location = `${API_PREFIX}${path}`;
}
