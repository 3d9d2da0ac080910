/**
 * Test support: a cabinet registered in the catalog through the platform's own
 * actions (no user: the calls the platform's services make), with its secret.
 */
import type { ServiceBroker } from "moleculer";

let seq = 0;

export interface RegisteredCabinet {
	cabinetId: string;
	secret: string;
	pointId: string;
	lat: number;
	lng: number;
	doors: { no: number; size: "S" | "M" | "L" }[];
}

/** A cabinet at a new point of a new merchant, or (`at`) beside another cabinet at its point. */
export async function registerCabinet(broker: ServiceBroker, doors: RegisteredCabinet["doors"], at?: RegisteredCabinet): Promise<RegisteredCabinet> {
	if (at) {
		const reg = await broker.call<{ cabinet: { id: string }; credentials: { username: string; password: string } }, unknown>("merchants.registerCabinet", { pointId: at.pointId, doors });
		return { ...at, cabinetId: reg.cabinet.id, secret: reg.credentials.password, doors };
	}
	const n = ++seq;
	let x = (process.pid % 10_000) * 1000 + n;
	let code = "D";
	while (x > 0 && code.length < 8) {
		code += String.fromCharCode(65 + (x % 26));
		x = Math.floor(x / 26);
	}
	const lat = 20 + (n % 10);
	const lng = 100 + (n % 20);
	await broker.call("merchants.createCity", { code, name: `门城${n}`, lat, lng });
	const merchant = await broker.call<{ id: string }, unknown>("merchants.createMerchant", { name: `门商户${n}`, contactPhone: "+86 21 5555 0000", commissionRate: 0.1 });
	const point = await broker.call<{ id: string }, unknown>("merchants.createPoint", {
		merchantId: merchant.id, cityCode: code, name: `门店${n}`, address: "测试路1号", lat, lng,
	});
	const reg = await broker.call<{ cabinet: { id: string }; credentials: { username: string; password: string } }, unknown>("merchants.registerCabinet", { pointId: point.id, doors });
	return { cabinetId: reg.cabinet.id, secret: reg.credentials.password, pointId: point.id, lat, lng, doors };
}
