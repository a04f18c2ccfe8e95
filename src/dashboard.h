/*
 * dashboard.h - the live dashboard page served at `/` on `stats-listen`
 * (SPEC §7, doc/dashboard.md): one self-contained HTML document, its CSS
 * and JavaScript inline, no external asset, so it works offline and under
 * a Content-Security-Policy of default-src 'none'.
 */
#ifndef BOLLARD_DASHBOARD_H
#define BOLLARD_DASHBOARD_H

#include "api.h"

/* The page, a static constant (never freed); *len gets its length. */
const char *dashboard_page(size_t *len);

#endif
