/* notifier_text.c - the templates and the rendering (notifier_text.h). */
#include "notifier_text.h"
