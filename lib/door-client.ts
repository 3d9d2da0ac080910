/**
 * Calling a door actor: the call goes to the node that should own the door's
 * cabinet (placement.ts), and if another node holds the cabinet's lease right
 * now (the node set just changed) it follows the lease holder. Nothing has
 * happened on a NOT_OWNER answer, so following it is safe — unlike Moleculer's
 * retry middleware, which is off for exactly this reason.
 */
import crypto from "node:crypto";
import type { Context, ServiceBroker } from "moleculer";
import { errorType, isUnanswered } from "./mesh-errors";
import { ownerOf } from "../domain/placement";
import type { CabinetLiveView, CabinetsAnswer, LinksAnswer } from "../domain/doors";

export const DOORS_SERVICE = "doors";

/**
 * A node whose heartbeats stopped this many intervals ago is left out of placement. Moleculer
 * declares it gone only when its check, run every heartbeatTimeout, finds it past that timeout
 * (8-16 s here); meanwhile live doors nodes handed cabinets over to the dead one (placement still
 * named it) and callers followed them there. Every node sees the same heartbeats, so they agree.
 */
const SILENT_HEARTBEATS = 2.5;

/** Available nodes that run the doors service and were heard lately, sorted (the same list everywhere). */
export function doorsNodes(broker: ServiceBroker): string[] {
	const list = broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string; nodeID: string }[];
	const silentAfterSec = (broker.options.heartbeatInterval ?? 10) * SILENT_HEARTBEATS;
	const now = process.uptime();
	const heardLately = (nodeID: string) => {
		const node = broker.registry.nodes.get(nodeID) as { local?: boolean; lastHeartbeatTime?: number } | undefined;
		return !node || node.local || node.lastHeartbeatTime === undefined || now - node.lastHeartbeatTime <= silentAfterSec;
	};
	return [...new Set(list.filter(s => s.name === DOORS_SERVICE && heardLately(s.nodeID)).map(s => s.nodeID))].sort();
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

/** Where placement puts a cabinet: among `nodes` less the suspects, or among all of them when every one is suspect. */
function placedNode(cabinetId: string, nodes: string[]): string | undefined {
	const healthy = nodes.filter(n => !isSuspect(n));
	return ownerOf(cabinetId, healthy.length ? healthy : nodes);
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
	const place = () => placedNode(cabinetId, doorsNodes(broker));
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

export type CabinetLive = { live: CabinetLiveView; error?: undefined } | { live?: undefined; error: string };

/** One cabinet's live view through `callDoors` (which follows the lease), or the error type that kept it. */
export async function cabinetLive(caller: Pick<ServiceBroker, "call"> | Pick<Context, "call">, broker: ServiceBroker, cabinetId: string): Promise<CabinetLive> {
	try {
		return { live: await callDoors<CabinetLiveView>(caller, broker, "cabinet", { cabinetId }, cabinetId) };
	} catch (err) {
		return { error: errorType(err) };
	}
}

/**
 * The live views of many cabinets with one `doors.cabinets` call per owning node (never one
 * call per cabinet). A cabinet another node holds right now (NOT_OWNER), or whose node did not
 * answer, is asked alone through `callDoors`, which follows the lease. Each cabinet gets its
 * view or the error type that kept it (never a guess).
 */
export async function cabinetsLive(
	caller: Pick<ServiceBroker, "call"> | Pick<Context, "call">,
	broker: ServiceBroker,
	cabinetIds: readonly string[],
): Promise<Map<string, CabinetLive>> {
	const out = new Map<string, CabinetLive>();
	const nodes = doorsNodes(broker);
	if (!nodes.length) {
		for (const id of cabinetIds) out.set(id, { error: "SERVICE_NOT_FOUND" });
		return out;
	}
	const byNode = new Map<string, string[]>();
	for (const id of new Set(cabinetIds)) {
		const node = placedNode(id, nodes)!;
		byNode.set(node, [...(byNode.get(node) ?? []), id]);
	}
	const alone = async (id: string) => void out.set(id, await cabinetLive(caller, broker, id));
	await Promise.all([...byNode].map(async ([nodeID, ids]) => {
		let answer: CabinetsAnswer;
		try {
			answer = await (caller.call as any)(`${DOORS_SERVICE}.cabinets`, { cabinetIds: ids }, { nodeID });
			suspects.delete(nodeID);
		} catch (err) {
			if (isUnanswered(err)) suspects.set(nodeID, Date.now() + SUSPECT_MS);
			await Promise.all(ids.map(alone));
			return;
		}
		await Promise.all(answer.cabinets.map(async c => {
			if (c.live) out.set(c.id, { live: c.live });
			else if (c.error.type === "NOT_OWNER") await alone(c.id);
			else out.set(c.id, { error: c.error.type });
		}));
	}));
	return out;
}

export interface DoorLinks {
	/** Cabinets some doors node holds: online if any holder says so, the latest time heard from. */
	links: Map<string, { online: boolean; lastSeenAt: number }>;
	/** Doors nodes asked. */
	asked: string[];
	/** Doors nodes that could not be asked; `["doors"]` when the mesh has no doors node at all. */
	unavailable: string[];
}

/** Pages of doors.links per node at most (10 000 cabinets each). */
const MAX_LINK_PAGES = 100;

/** Every doors node's link states: its own page loop per node, `{ nodeID }` each. */
export async function doorLinks(caller: Pick<ServiceBroker, "call"> | Pick<Context, "call">, broker: ServiceBroker): Promise<DoorLinks> {
	const nodes = doorsNodes(broker);
	const links: DoorLinks["links"] = new Map();
	const unavailable: string[] = nodes.length ? [] : [DOORS_SERVICE];
	await Promise.all(nodes.map(async nodeID => {
		const got: LinksAnswer["cabinets"] = [];
		try {
			let after: string | undefined;
			for (let page = 0; page < MAX_LINK_PAGES; page++) {
				const answer: LinksAnswer = await (caller.call as any)(`${DOORS_SERVICE}.links`, after ? { after } : {}, { nodeID });
				got.push(...answer.cabinets);
				if (!answer.next) break;
				after = answer.next;
			}
		} catch {
			unavailable.push(nodeID);
			return;
		}
		for (const [id, online, lastSeenAt] of got) {
			const prev = links.get(id);
			links.set(id, { online: online === 1 || !!prev?.online, lastSeenAt: Math.max(lastSeenAt, prev?.lastSeenAt ?? 0) });
		}
	}));
	return { links, asked: nodes, unavailable: unavailable.sort() };
}
