/* kafkaesque-bench disk: fdatasync and spread-append figures of the disk
 * under a folder (tools/bench/disk.c). */
#ifndef KQ_BENCH_DISK_H
#define KQ_BENCH_DISK_H

/* Runs `kafkaesque-bench disk`; argv[0] is "disk".  Returns the exit
 * code: 0, 1 when a write or sync failed, 2 for bad arguments. */
int bench_disk_main(int argc, char **argv);

#endif
