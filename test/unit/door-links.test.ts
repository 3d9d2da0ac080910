/**
 * Asking every doors node for its cabinets' links (lib/door-client.ts): one
 * node that cannot be asked is named, not guessed about; a cabinet two nodes
 * hold (a hand-over) is online if either says so.
 */
import { ServiceBroker } from "moleculer";
import { doorLinks, cabinetsLive } from "../../lib/door-client";

const brokers: ServiceBroker[] = [];
const node = (nodeID: string) => {
	const b = new ServiceBroker({ nodeID, namespace: `links-${process.pid}`, transporter: "Fake", logger: false, requestTimeout: 500 });
	brokers.push(b);
	return b;
};
const calls: string[] = [];
const doorsOn = (b: ServiceBroker, links: [string, 0 | 1, number][] | "broken") =>
	b.createService({
		name: "doors",
		actions: {
			links(ctx: any) {
				calls.push(`${b.nodeID}.links`);
				if (links === "broken") throw Object.assign(new Error("store down"), { type: "SERVICE_NOT_AVAILABLE" });
				const after = ctx.params.after ?? "";
				const rest = [...links].sort((x, y) => (x[0] < y[0] ? -1 : 1)).filter(l => l[0] > after);
				return { nodeID: b.nodeID, cabinets: rest.slice(0, 1), next: rest.length > 1 ? rest[0][0] : null };
			},
			cabinets(ctx: any) {
				calls.push(`${b.nodeID}.cabinets`);
				return { cabinets: ctx.params.cabinetIds.map((id: string) => ({ id, live: { id, online: true, lastSeenAt: null, epoch: 1, doors: [] } })) };
			},
		},
	});

let caller: ServiceBroker;
beforeAll(async () => {
	caller = node("caller");
	const a = node("doors-a");
	const b = node("doors-b");
	const c = node("doors-c");
	doorsOn(a, [["cab_aaaaaa1", 1, 1000], ["cab_shared1", 0, 500]]);
	doorsOn(b, [["cab_shared1", 1, 2000], ["cab_bbbbbb1", 0, 0]]);
	doorsOn(c, "broken");
	await Promise.all(brokers.map(x => x.start()));
	await caller.waitForServices("doors");
	for (;;) {
		const nodes = new Set((caller.registry.getServiceList({ onlyAvailable: true }) as any[]).filter(s => s.name === "doors").map(s => s.nodeID));
		if (nodes.size === 3) break;
		await new Promise(r => setTimeout(r, 10));
	}
});
afterAll(() => Promise.all(brokers.map(b => b.stop())));

it("asks each doors node (every page), merges what they hold and names the node that could not be asked", async () => {
	calls.length = 0;
	const r = await doorLinks(caller, caller);
	expect(r.asked).toEqual(["doors-a", "doors-b", "doors-c"]);
	expect(r.unavailable).toEqual(["doors-c"]);
	expect(Object.fromEntries(r.links)).toEqual({
		cab_aaaaaa1: { online: true, lastSeenAt: 1000 },
		cab_shared1: { online: true, lastSeenAt: 2000 },
		cab_bbbbbb1: { online: false, lastSeenAt: 0 },
	});
	expect(calls.filter(c => c === "doors-a.links")).toHaveLength(2); // two pages of one
	expect(calls.filter(c => c === "doors-b.links")).toHaveLength(2);
});

it("asks for many cabinets' live views with one call per owning node", async () => {
	calls.length = 0;
	const ids = Array.from({ length: 30 }, (_, i) => `cab_many${String(i).padStart(4, "0")}`);
	const live = await cabinetsLive(caller, caller, ids);
	expect([...live.values()].every(v => v.live?.online === true)).toBe(true);
	expect(calls.every(c => c.endsWith(".cabinets"))).toBe(true);
	expect(calls.length).toBeLessThanOrEqual(3);
	expect(new Set(calls).size).toBe(calls.length);
});

it("says the whole doors service is unavailable when the mesh has none", async () => {
	const lonely = new ServiceBroker({ nodeID: "lonely", logger: false });
	brokers.push(lonely);
	await lonely.start();
	const r = await doorLinks(lonely, lonely);
	expect(r).toMatchObject({ asked: [], unavailable: ["doors"] });
	expect(r.links.size).toBe(0);
});
