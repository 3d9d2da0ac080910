/**
 * Calling a door actor: the call goes to the node that should own the door's
 * cabinet (placement.ts), and if another node holds the cabinet's lease right
 * now (the node set just changed) it follows the lease holder. Nothing has
 * happened on a NOT_OWNER answer, so following it is safe — unlike Moleculer's
 * retry middleware, which is off for exactly this reason.
 */
import crypto from "node:crypto";
import type { Context, ServiceBroker } from "moleculer";
import { isUnanswered } from "./mesh-errors";
import { ownerOf } from "../domain/placement";

export const DOORS_SERVICE = "doors";

/** Available nodes that run the doors service, sorted (the same list everywhere). */
export function doorsNodes(broker: ServiceBroker): string[] {
	const list = broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; nodeID: string }[];
	return [...new Set(list.filter(s => s.name === DOORS_SERVICE).map(s => s.nodeID))].sort();
}

/**
 * Nodes that just failed to answer (killed, partitioned): left out of placement
 * for a while, so callers move on to the next owner before the mesh's
 * heartbeat timeout declares the node gone. Any answer from the node (a result
 * or a domain error) clears it at once. Per calling process.
 */
const SUSPECT_MS = 10_000;
const suspects = new Map<string, number>();

function isSuspect(nodeID: string): boolean {
	const until = suspects.get(nodeID);
	if (until === undefined) return false;
	if (until > Date.now()) return true;
	suspects.delete(nodeID);
	return false;
}

/** A lease owner token: `{nodeID}#{random id of this process}` (a restarted node is a new owner). */
export const ownerToken = (nodeID: string) => `${nodeID}#${crypto.randomBytes(6).toString("hex")}`;
export const nodeOfOwner = (owner: string) => owner.slice(0, owner.lastIndexOf("#"));

export async function callDoors<T>(
	caller: Pick<ServiceBroker, "call"> | Pick<Context, "call">,
	broker: ServiceBroker,
	action: string,
	params: Record<string, unknown>,
	cabinetId: string,
	opts: { timeout?: number; meta?: Record<string, unknown> } = {},
): Promise<T> {
	const place = () => {
		const nodes = doorsNodes(broker);
		const healthy = nodes.filter(n => !isSuspect(n));
		return ownerOf(cabinetId, healthy.length ? healthy : nodes);
	};
	let target = place();
	for (let attempt = 0; ; attempt++) {
		try {
			const answer = (await (caller.call as any)(`${DOORS_SERVICE}.${action}`, params, { ...opts, ...(target ? { nodeID: target } : {}) })) as T;
			if (target) suspects.delete(target);
			return answer;
		} catch (err: any) {
			if (target && isUnanswered(err)) {
				// Nothing is known to have happened there; the next owner resumes from the store
				// (an open in flight was written with its cmdId first, so a repeat re-sends that one).
				suspects.set(target, Date.now() + SUSPECT_MS);
				const next = place();
				if (attempt >= 2 || !next || next === target) throw err;
				target = next;
				continue;
			}
			if (target) suspects.delete(target); // it answered
			if (attempt >= 2) throw err;
			const heldBy = err?.type === "NOT_OWNER" ? (err.data?.heldBy as string | undefined) : undefined;
			const holder = heldBy ? nodeOfOwner(heldBy) : undefined;
			// A holder the mesh no longer knows is gone: its lease runs out shortly; the caller may try again then.
			if (!holder || holder === target || !doorsNodes(broker).includes(holder)) throw err;
			target = holder;
		}
	}
}
