/**
 * Every service of the platform by name. A node runs the subset `SERVICES`
 * names; the gateway reads all of them for its route table.
 */
import type { ServiceSchema } from "moleculer";
import type { Config, ServiceName } from "../config";
import { createApiService } from "./api.service";
import { createUsersService } from "./users.service";
import { createMerchantsService } from "./merchants.service";
import { createGeoService } from "./geo.service";
import { createHardwareService } from "./hardware.service";
import { createDoorsService } from "../actors/doors.service";
import { createOrdersService } from "./orders.service";
import { createBillingService } from "./billing.service";
import { createAlertsService } from "./alerts.service";

export interface SchemaOptions {
	/** Override the data directory (`null` = in-memory NeDB, for tests). */
	dataDir?: string | null;
}

/** The schemas of every service except the gateway: the sources of the REST routes. */
export function createDomainSchemas(config: Config, opts: SchemaOptions = {}): Partial<Record<ServiceName, ServiceSchema<any, any, any>>> {
	return {
		users: createUsersService(config, opts),
		merchants: createMerchantsService(config, opts),
		geo: createGeoService(config),
		hardware: createHardwareService(config),
		doors: createDoorsService(config, opts),
		orders: createOrdersService(config, opts),
		billing: createBillingService(config, opts),
		alerts: createAlertsService(config, opts),
	};
}

export function createServiceSchemas(config: Config, names: readonly ServiceName[], opts: SchemaOptions = {}): ServiceSchema<any, any, any>[] {
	const domain = createDomainSchemas(config, opts);
	return names.map(name => {
		if (name === "api") return createApiService(config, Object.values(domain) as ServiceSchema[]);
		const schema = domain[name];
		if (!schema) throw new Error(`No schema for service ${name}`);
		return schema;
	});
}
