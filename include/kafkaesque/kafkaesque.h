/* kafkaesque plugin SDK: every header but clock.h, which needs POSIX's
 * clock_gettime() (not declared in strict C modes). */
#ifndef KAFKAESQUE_H
#define KAFKAESQUE_H

#include "bytes.h"
#include "config.h"
#include "consensus.h"
#include "error.h"
#include "list.h"
#include "partitioner.h"
#include "plugin.h"
#include "storage.h"
#include "transport.h"

#endif /* KAFKAESQUE_H */
