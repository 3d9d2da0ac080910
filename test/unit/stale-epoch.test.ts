/**
 * A cabinet that answers STALE_EPOCH has seen a higher epoch than its owner's
 * (the store forgot, or a clock went back). The owner moves to a new epoch
 * once — not in a loop of queries, refusals and lost leases — and stops only
 * when the store says another node holds the lease.
 */
import { CabinetHost, DEFAULT_HOST_SETTINGS, type HostDeps } from "../../actors/cabinet-host";
import type { DoorStore } from "../../actors/door-store";
import { parseCabinetMessage, type Command } from "../../domain/protocol";

function harness(bump: (epoch: number) => number | null) {
	let now = 1_000_000;
	const sent: Command[] = [];
	const lost: string[] = [];
	const bumps: number[] = [];
	const store: DoorStore = {
		acquire: async () => ({ epoch: 5 }),
		renew: async () => true,
		release: async () => undefined,
		bump: async (_c, _o, epoch) => (bumps.push(epoch), bump(epoch)),
		load: async () => [],
		save: async () => true,
		taken: async () => [],
		due: async () => [],
		close: async () => undefined,
	};
	const deps: HostDeps = {
		store, owner: "node-a#1", settings: DEFAULT_HOST_SETTINGS, now: () => now,
		catalog: async () => ({ pointId: "pt_1", merchantId: "mer_1", doors: [{ no: 1, size: "M", disabled: false }], secret: "s" }),
		send: async (_id, cmd) => void sent.push(cmd),
		emit: () => undefined,
		toOrders: async () => undefined,
		lost: (_h, why) => void lost.push(why),
		warn: () => undefined,
	};
	const stale = (cmd: Command) => {
		const parsed = parseCabinetMessage("ack", JSON.stringify({ cmdId: cmd.cmdId, ok: false, error: "STALE_EPOCH", ts: now }));
		if (!parsed.ok) throw new Error("bad ack");
		return parsed.value;
	};
	return { sent, lost, bumps, stale, advance: (ms: number) => (now += ms), open: () => CabinetHost.open("cab_stale1", deps) };
}

const settle = () => new Promise(r => setImmediate(r));

it("moves to a new epoch once per interval and asks again, instead of looping", async () => {
	const h = harness(epoch => epoch + 1000);
	const host = await h.open();
	expect(h.sent.map(c => [c.action, c.epoch])).toEqual([["query", 5]]); // a new owner asks first
	await host.report(h.stale(h.sent[0]));
	await settle();
	expect(h.bumps).toEqual([5]);
	expect(host.epoch).toBe(1005);
	expect(h.sent.map(c => [c.action, c.epoch])).toEqual([["query", 5], ["query", 1005]]);
	// More refusals right away (late answers to old commands): no new epoch, no new command.
	for (let i = 0; i < 50; i++) await host.report(h.stale(h.sent[0]));
	await settle();
	expect(h.bumps).toHaveLength(1);
	expect(h.sent).toHaveLength(2);
	expect(h.lost).toEqual([]);
	h.advance(10_000);
	await host.report(h.stale(h.sent[1]));
	await settle();
	expect(h.bumps).toEqual([5, 1005]);
	expect(h.sent).toHaveLength(3);
});

it("lets the cabinet go when the store says the lease is someone else's", async () => {
	const h = harness(() => null);
	const host = await h.open();
	await host.report(h.stale(h.sent[0]));
	await settle();
	expect(h.lost).toEqual(["the cabinet has seen a newer owner"]);
});
