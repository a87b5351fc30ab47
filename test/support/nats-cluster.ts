/** The three-node NATS JetStream cluster of the tests: the bench harness's launcher, shared. */
export { NATS_SERVER_BIN, freePort, startNatsCluster } from '../../native-free-bench/lib/nats-cluster.js';
export type { NatsCluster, NatsNode, StartNatsClusterOptions } from '../../native-free-bench/lib/nats-cluster.js';
