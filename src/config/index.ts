/**
 * The configuration API: read petrel.conf (or the embedded defaults), report
 * problems as file:line, print the effective configuration.
 */
export type { Config, Field, CatchAll, DkimSign, Endpoint, RelayHost, Cidr } from './schema';
export { ConfigError, formatConfigError } from './errors';
export { defaultConfig } from './defaults';
export { parseConfig, loadConfig } from './parse';
export { describeConfig } from './describe';
