/* kafkaesque-bench disk: fdatasync and spread-append figures of the disk
 * under a folder (tools/bench/disk.c). */
#ifndef KQ_BENCH_DISK_H
#define KQ_BENCH_DISK_H

/* Runs `kafkaesque-bench disk`; argv[0] is "disk" and argv stays the
 * caller's.  Returns the exit code: 0; 1 when a call failed or a signal
 * stopped the run (said on stderr); 2 for bad arguments.  Installs
 * handlers for SIGINT and SIGTERM. */
int bench_disk_main(int argc, char **argv);

#endif
