import {
	cabinetMayPublish, cabinetMaySubscribe, formatDoorId, isNewer, newCmdId, parseAck, parseCabinetMessage, parseCommand,
	parseDoorId, parseEvent, parseState, parseStatus, parseTopic, signCommand, verifyCommand,
} from "../../domain/protocol";

const SECRET = "s3cret-of-cab_A1";

describe("cabinet protocol", () => {
	it("signs exactly the text PROTOCOL.md gives, door empty for query", () => {
		const crypto = require("node:crypto");
		const open = signCommand(SECRET, { cmdId: "C1", action: "open", door: 7, epoch: 12, ts: 1000, notAfter: 11000 });
		expect(open.sig).toBe(crypto.createHmac("sha256", SECRET).update("C1|open|7|12|1000|11000").digest("hex"));
		const query = signCommand(SECRET, { cmdId: "C2", action: "query", epoch: 12, ts: 1000, notAfter: 11000 });
		expect(query.sig).toBe(crypto.createHmac("sha256", SECRET).update("C2|query||12|1000|11000").digest("hex"));
		expect("door" in query).toBe(false);
	});

	it("verifies a signature and refuses any change, another secret or a malformed sig", () => {
		const cmd = signCommand(SECRET, { cmdId: newCmdId(), action: "open", door: 3, epoch: 1, ts: 5, notAfter: 10 });
		expect(verifyCommand(SECRET, cmd)).toBe(true);
		expect(verifyCommand("other", cmd)).toBe(false);
		expect(verifyCommand(SECRET, { ...cmd, door: 4 })).toBe(false);
		expect(verifyCommand(SECRET, { ...cmd, epoch: 2 })).toBe(false);
		expect(verifyCommand(SECRET, { ...cmd, notAfter: 11 })).toBe(false);
		expect(verifyCommand(SECRET, { ...cmd, sig: cmd.sig.toUpperCase() })).toBe(false);
		expect(verifyCommand(SECRET, { ...cmd, sig: "zz" })).toBe(false);
	});

	it("makes time-ordered unique 26-character command ids", () => {
		const ids = Array.from({ length: 1000 }, (_, i) => newCmdId(1_700_000_000_000 + i));
		expect(new Set(ids).size).toBe(1000);
		for (const id of ids) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
		expect([...ids].sort()).toEqual(ids);
	});

	it("lets a cabinet publish only its own report topics and subscribe only its own cmd topic", () => {
		for (const k of ["status", "state", "event", "ack", "heartbeat"]) expect(cabinetMayPublish("cab_A", `lockers/cab_A/${k}`)).toBe(true);
		expect(cabinetMayPublish("cab_A", "lockers/cab_A/cmd")).toBe(false);
		expect(cabinetMayPublish("cab_A", "lockers/cab_B/state")).toBe(false);
		expect(cabinetMayPublish("cab_A", "lockers/cab_A/state/x")).toBe(false);
		expect(cabinetMayPublish("cab_A", "lockers/+/state")).toBe(false);
		expect(cabinetMaySubscribe("cab_A", "lockers/cab_A/cmd")).toBe(true);
		expect(cabinetMaySubscribe("cab_A", "lockers/cab_B/cmd")).toBe(false);
		expect(cabinetMaySubscribe("cab_A", "lockers/+/cmd")).toBe(false);
		expect(cabinetMaySubscribe("cab_A", "lockers/#")).toBe(false);
		expect(cabinetMaySubscribe("cab_A", "lockers/cab_A/state")).toBe(false);
	});

	it("parses topics and door ids (padding optional on input, canonical pads to 2)", () => {
		expect(parseTopic("lockers/cab_A1/ack")).toEqual({ cabinetId: "cab_A1", kind: "ack" });
		expect(parseTopic("lockers/cab_A1/nope")).toBeNull();
		expect(parseTopic("other/cab_A1/ack")).toBeNull();
		expect(formatDoorId("cab_X", 7)).toBe("cab_X:07");
		expect(formatDoorId("cab_X", 123)).toBe("cab_X:123");
		expect(parseDoorId("cab_X:07")).toEqual({ cabinetId: "cab_X", no: 7 });
		expect(parseDoorId("cab_X:7")).toEqual({ cabinetId: "cab_X", no: 7 });
		expect(parseDoorId("cab_X:0")).toBeNull();
		expect(parseDoorId("cab_X:")).toBeNull();
	});

	it("parses valid payloads, ignores unknown fields, and refuses malformed ones without throwing", () => {
		expect(parseAck('{"cmdId":"A","ok":true,"door":7,"ts":1,"extra":1}')).toEqual({ ok: true, value: { cmdId: "A", ok: true, door: 7, ts: 1 } });
		expect(parseAck('{"cmdId":"A","ok":false,"door":7,"error":"JAMMED","ts":1}')).toEqual({ ok: true, value: { cmdId: "A", ok: false, door: 7, error: "JAMMED", ts: 1 } });
		expect(parseAck('{"cmdId":"A","ok":false,"error":"WHATEVER","ts":1}').ok).toBe(false);
		expect(parseState('{"ts":1,"seq":3,"boot":"b","doors":[{"no":1,"open":false,"occupied":true}]}')).toEqual({
			ok: true, value: { ts: 1, seq: 3, boot: "b", doors: [{ no: 1, open: false, occupied: true }] },
		});
		expect(parseState('{"ts":1,"seq":3,"boot":"b","doors":[{"no":1,"open":false,"occupied":true},{"no":1,"open":true,"occupied":true}]}').ok).toBe(false);
		expect(parseEvent('{"type":"closed","door":7,"ts":1,"seq":2,"occupied":true}')).toEqual({ ok: true, value: { type: "closed", door: 7, ts: 1, seq: 2, occupied: true } });
		expect(parseStatus('{"online":false}')).toEqual({ ok: true, value: { online: false } });
		expect(parseStatus('{"online":true,"boot":"b1","fw":"1.0","doors":24}')).toEqual({ ok: true, value: { online: true, boot: "b1", fw: "1.0", doors: 24 } });
		expect(parseCommand('{"cmdId":"C","action":"open","epoch":1,"ts":1,"notAfter":2,"sig":"x"}').ok).toBe(false); // open needs a door
		const garbage = ["", "null", "[]", "{", "42", '"x"', Buffer.from([0xff, 0xfe]), '{"ts":-1,"seq":1,"boot":"b","doors":[]}', "x".repeat(70_000)];
		for (const g of garbage) for (const kind of ["ack", "state", "event", "heartbeat", "status"] as const) expect(parseCabinetMessage(kind, g).ok).toBe(false);
	});

	it("orders messages by (boot, seq): older seq of the same boot is stale, a new boot starts over", () => {
		expect(isNewer(undefined, { boot: "a", seq: 0 })).toBe(true);
		expect(isNewer({ boot: "a", seq: 5 }, { boot: "a", seq: 6 })).toBe(true);
		expect(isNewer({ boot: "a", seq: 5 }, { boot: "a", seq: 5 })).toBe(false);
		expect(isNewer({ boot: "a", seq: 5 }, { boot: "a", seq: 4 })).toBe(false);
		expect(isNewer({ boot: "a", seq: 5 }, { boot: "b", seq: 0 })).toBe(true);
	});
});
