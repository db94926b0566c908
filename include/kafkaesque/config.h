/* kafkaesque plugin SDK: typed readers of a module's config section.
 *
 * Each reader looks up one key of host->config (the module's own section,
 * borrowed from the core; NULL when the file has none), checks its type
 * and range, and writes *out only when the value is good.  An absent key
 * leaves *out alone, so the caller sets defaults first.  A bad value logs
 * one line naming its JSON path, e.g. "segment.fsync: expected one of
 * always, interval, never", and returns KQ_ECONFIG.  Strings handed out
 * are borrowed from host->config: copy them to keep them past init().
 * Header-only; nothing to link but jansson. */
#ifndef KAFKAESQUE_CONFIG_H
#define KAFKAESQUE_CONFIG_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "plugin.h"

/* The value of `key` in the section, or NULL (no section or no key). */
static inline json_t *kq__modconf_get(const struct kq_host *host,
				      const char *key)
{
	if (host->config == NULL || !json_is_object(host->config))
		return NULL;
	return json_object_get(host->config, key);
}

/* Joins a NULL-terminated list of words with ", " into buf (cut short
 * when it does not fit), for messages. */
static inline void kq__modconf_join(const char *const *words, char *buf,
				    size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; words[i] != NULL; i++) {
		int n = snprintf(buf + used, size - used, "%s%s",
				 i > 0 ? ", " : "", words[i]);

		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
}

/* Checks that the section is an object whose keys are all in `keys` (a
 * NULL-terminated list; NULL for a module without options).  Logs every
 * stray key, not only the first, with the known ones.  A missing section
 * is fine.  Returns 0 or KQ_ECONFIG. */
static inline int kq_config_keys(const struct kq_host *host,
				 const char *const *keys)
{
	const char *key;
	json_t *value;
	char known[512] = "";
	int rv = 0;

	if (host->config == NULL)
		return 0;
	if (!json_is_object(host->config)) {
		host->log(host, KQ_LOG_ERROR, "%s: expected an object",
			  host->module);
		return KQ_ECONFIG;
	}
	json_object_foreach((json_t *)host->config, key, value)
	{
		bool found = false;

		(void)value;
		for (size_t i = 0; keys != NULL && keys[i] != NULL; i++)
			if (strcmp(keys[i], key) == 0)
				found = true;
		if (found)
			continue;
		if (keys == NULL || keys[0] == NULL) {
			host->log(host, KQ_LOG_ERROR,
				  "%s.%s: unknown key (%s takes no options)",
				  host->module, key, host->module);
		} else {
			if (rv == 0) /* once, at the first stray key */
				kq__modconf_join(keys, known, sizeof(known));
			host->log(host, KQ_LOG_ERROR,
				  "%s.%s: unknown key (known: %s)",
				  host->module, key, known);
		}
		rv = KQ_ECONFIG;
	}
	return rv;
}

/* Reads an integer in [min, max] into *out.  Returns 0 or KQ_ECONFIG. */
static inline int kq_config_int(const struct kq_host *host, const char *key,
				int64_t min, int64_t max, int64_t *out)
{
	json_t *v = kq__modconf_get(host, key);
	json_int_t n;

	if (v == NULL)
		return 0;
	n = json_is_integer(v) ? json_integer_value(v) : 0;
	if (json_is_integer(v) && n >= min && n <= max) {
		*out = (int64_t)n;
		return 0;
	}
	if (max == INT64_MAX)
		host->log(host, KQ_LOG_ERROR,
			  "%s.%s: expected an integer of at least %" PRId64,
			  host->module, key, min);
	else
		host->log(host, KQ_LOG_ERROR,
			  "%s.%s: expected an integer %" PRId64 "..%" PRId64,
			  host->module, key, min, max);
	return KQ_ECONFIG;
}

/* Reads true or false into *out.  Returns 0 or KQ_ECONFIG. */
static inline int kq_config_bool(const struct kq_host *host, const char *key,
				 bool *out)
{
	json_t *v = kq__modconf_get(host, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		host->log(host, KQ_LOG_ERROR, "%s.%s: expected true or false",
			  host->module, key);
		return KQ_ECONFIG;
	}
	*out = json_is_true(v);
	return 0;
}

/* Points *out at a non-empty string, borrowed from host->config.
 * Returns 0 or KQ_ECONFIG. */
static inline int kq_config_string(const struct kq_host *host, const char *key,
				   const char **out)
{
	json_t *v = kq__modconf_get(host, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		host->log(host, KQ_LOG_ERROR,
			  "%s.%s: expected a non-empty string", host->module,
			  key);
		return KQ_ECONFIG;
	}
	*out = json_string_value(v);
	return 0;
}

/* Reads one of `choices` (a NULL-terminated list) and stores its index
 * in *out.  Returns 0 or KQ_ECONFIG. */
static inline int kq_config_choice(const struct kq_host *host, const char *key,
				   const char *const *choices, int *out)
{
	json_t *v = kq__modconf_get(host, key);
	char list[512];

	if (v == NULL)
		return 0;
	for (int i = 0; json_is_string(v) && choices[i] != NULL; i++)
		if (strcmp(json_string_value(v), choices[i]) == 0) {
			*out = i;
			return 0;
		}
	kq__modconf_join(choices, list, sizeof(list));
	host->log(host, KQ_LOG_ERROR, "%s.%s: expected one of %s", host->module,
		  key, list);
	return KQ_ECONFIG;
}

#endif /* KAFKAESQUE_CONFIG_H */
