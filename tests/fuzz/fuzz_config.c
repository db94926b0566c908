/* libFuzzer target for the broker's configuration parser and validator:
 * any text gives either a configuration or one error line, never a crash
 * or a leak.
 *
 * Built on request: make fuzz-config && ./fuzz_config -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kq__config cfg;
	char err[512];
	char *text = malloc(size + 1);

	memcpy(text, data, size);
	text[size] = '\0';
	if (kq__config_parse(text, NULL, &cfg, err, sizeof(err)) == 0)
		kq__config_free(&cfg);
	free(text);
	return 0;
}
