/**
 * Placement leaves out a doors node whose heartbeats stopped, before Moleculer's own check
 * declares it gone: live nodes must not hand cabinets over to a dead one, nor callers follow
 * them there.
 */
import { ServiceBroker } from "moleculer";
import { doorsNodes } from "../../lib/door-client";

const broker = (nodeID: string) =>
	new ServiceBroker({ nodeID, namespace: `doors-nodes-${process.pid}`, transporter: "Fake", logger: false, heartbeatInterval: 2, heartbeatTimeout: 8 });

it("lists the doors nodes heard within 2.5 heartbeats, itself always", async () => {
	const [a, b, c] = [broker("node-a"), broker("node-b"), broker("node-c")];
	for (const n of [a, b]) n.createService({ name: "doors" });
	c.createService({ name: "users" });
	await Promise.all([a, b, c].map(n => n.start()));
	try {
		await a.waitForServices(["users"], 5_000);
		const until = Date.now() + 5_000;
		while (doorsNodes(a).length < 2 && Date.now() < until) await new Promise(r => setTimeout(r, 20));
		expect(doorsNodes(a)).toEqual(["node-a", "node-b"]);

		const seenB = a.registry.nodes.get("node-b") as unknown as { lastHeartbeatTime: number };
		seenB.lastHeartbeatTime = Math.round(process.uptime()) - 4; // two heartbeats missed: still in
		expect(doorsNodes(a)).toEqual(["node-a", "node-b"]);
		seenB.lastHeartbeatTime = Math.round(process.uptime()) - 6; // silent for three: out
		expect(doorsNodes(a)).toEqual(["node-a"]);
		// node b's own view: it never leaves itself out.
		(b.registry.nodes.get("node-b") as unknown as { lastHeartbeatTime: number }).lastHeartbeatTime = 0;
		expect(doorsNodes(b)).toContain("node-b");
	} finally {
		await Promise.all([a, b, c].map(n => n.stop()));
	}
});
