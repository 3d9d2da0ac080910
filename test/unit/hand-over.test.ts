/**
 * A planned hand-over (a node joins, or one stops) passes on what the previous owner heard of the
 * cabinet: the next owner may command it at once, before the cabinet's reports reach it (they may
 * still go to the previous owner for a moment while the mesh learns of the new node). A silent
 * cabinet is passed on as unknown, and the next owner lets it go offline on the same silence rule.
 */
import { CabinetHost, DEFAULT_HOST_SETTINGS, type HostDeps } from "../../actors/cabinet-host";
import { DOOR_STATE_ENTITY, LocalDoorStore, type DoorCabinetDoc } from "../../actors/door-store";
import { createAdapter } from "../../mixins/db.mixin";
import { Repository } from "../../mixins/repository";
import { parseCabinetMessage, type CabinetMessage, type Command } from "../../domain/protocol";

const CABINET = "cab_handover1";
const SETTINGS = { ...DEFAULT_HOST_SETTINGS, heartbeatSec: 2 };
const SILENCE_MS = 3 * SETTINGS.heartbeatSec * 1000;

async function fleet(settings = SETTINGS) {
	let now = 1_000_000;
	const repo = new Repository<DoorCabinetDoc>(DOOR_STATE_ENTITY, createAdapter(DOOR_STATE_ENTITY, { dataDir: null }), {
		broker: {} as never, logger: console as never, persistent: false,
	});
	await repo.connect();
	const store = new LocalDoorStore(repo, () => now);
	const sent: { owner: string; cmd: Command }[] = [];
	const onlineEvents: { owner: string; event: string; reason: unknown }[] = [];
	const depsOf = (owner: string): HostDeps => ({
		store, owner, settings, now: () => now,
		catalog: async () => ({ pointId: "pt_1", merchantId: "mer_1", doors: [{ no: 1, size: "M", disabled: false }], secret: "s" }),
		send: async (_id, cmd) => void sent.push({ owner, cmd }),
		emit: (event, payload) => {
			if (event.startsWith("doors.cabinet.")) onlineEvents.push({ owner, event, reason: (payload as { reason?: unknown }).reason });
		},
		toOrders: async () => undefined,
		lost: () => undefined,
		warn: () => undefined,
	});
	const message = (kind: "heartbeat" | "ack", body: object): CabinetMessage => {
		const parsed = parseCabinetMessage(kind, JSON.stringify(body));
		if (!parsed.ok) throw new Error(`bad ${kind}`);
		return parsed.value;
	};
	return {
		sent, onlineEvents, message,
		advance: (ms: number) => (now += ms),
		open: (owner: string) => CabinetHost.open(CABINET, depsOf(owner)),
		/** Answers the next command `owner` sent with an ok ack, as the cabinet would. */
		ackNext: async (host: CabinetHost, owner: string, action: string) => {
			for (let i = 0; i < 100; i++) {
				const c = sent.find(s => s.owner === owner && s.cmd.action === action);
				if (c) return host.report(message("ack", { cmdId: c.cmd.cmdId, ok: true, door: c.cmd.door, ts: now }));
				await new Promise(r => setImmediate(r));
			}
			throw new Error(`${owner} sent no ${action}`);
		},
	};
}

/** node a hears a heartbeat, `quietMs` later hands the cabinet over, and node b takes it. */
async function handedOver(quietMs: number, settings = SETTINGS) {
	const f = await fleet(settings);
	const a = await f.open("node-a#1");
	await a.report(f.message("heartbeat", { ts: 1 }));
	f.advance(quietMs);
	await a.handOver("node-b");
	return { f, b: await f.open("node-b#1") };
}

it("the next owner commands a cabinet heard lately at once, without hearing it first", async () => {
	const { f, b } = await handedOver(1_500);
	expect(b.online).toBe(true);
	expect(f.onlineEvents.filter(e => e.owner === "node-b#1")).toEqual([{ owner: "node-b#1", event: "doors.cabinet.online", reason: "handed over by its previous owner" }]);
	// No report reaches node b: its open goes out and completes on the cabinet's ack.
	const opening = b.open(1, "operator", null);
	await f.ackNext(b, "node-b#1", "open");
	await expect(opening).resolves.toMatchObject({ id: `${CABINET}:01` });
});

it("the silence window the previous owner started runs on: still silent at its end, offline here too", async () => {
	const { f, b } = await handedOver(1_500);
	f.advance(SILENCE_MS - 1_500 - 1);
	await b.tick();
	expect(b.online).toBe(true);
	f.advance(2);
	await b.tick();
	expect(b.online).toBe(false);
});

it("a cabinet silent for its window is handed over as unknown: the next owner waits to hear it", async () => {
	const { f, b } = await handedOver(SILENCE_MS + 1);
	expect(b.online).toBe(false);
	expect(f.onlineEvents.filter(e => e.owner === "node-b#1")).toEqual([]);
});

it("after a failover the next owner knows what the dead one heard as it last renewed the lease", async () => {
	// Heartbeats every 30 s (the default): the silence window (90 s) outlasts the lease (10 s).
	const settings = { ...DEFAULT_HOST_SETTINGS, heartbeatSec: 30 };
	const f = await fleet(settings);
	const a = await f.open("node-a#1");
	await a.report(f.message("heartbeat", { ts: 1 }));
	f.advance(settings.leaseTtlMs / 3);
	await a.tick(); // renews, and keeps the rest of the window with the lease
	f.advance(settings.leaseTtlMs + 1); // node a died: its lease runs out
	const b = await f.open("node-b#1");
	expect(b.online).toBe(true);
	expect(f.onlineEvents.filter(e => e.owner === "node-b#1").map(e => e.event)).toEqual(["doors.cabinet.online"]);
});

it("what was heard is taken once: an owner that dies before it renewed passes nothing on", async () => {
	const settings = { ...DEFAULT_HOST_SETTINGS, heartbeatSec: 30 }; // a window (90 s) that outlasts the lease
	const { f, b } = await handedOver(0, settings);
	expect(b.online).toBe(true);
	// node b dies before it renewed: node c takes the cabinet knowing nothing of the link.
	f.advance(settings.leaseTtlMs + 1);
	const c = await f.open("node-c#1");
	expect(c.online).toBe(false);
});
