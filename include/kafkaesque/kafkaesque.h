/* kafkaesque plugin SDK: everything a module may include. */
#ifndef KAFKAESQUE_H
#define KAFKAESQUE_H

#include "consensus.h"
#include "error.h"
#include "partitioner.h"
#include "plugin.h"
#include "storage.h"
#include "transport.h"

#endif /* KAFKAESQUE_H */
