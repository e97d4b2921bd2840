/* notifier_send.c - the receivers over libcurl (notifier_send.h). */
#include "notifier_send.h"
