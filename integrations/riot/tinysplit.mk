# tinysplit.mk: compile an ONNX model with tinysplit as part of a RIOT application's build.
#
# In the application's Makefile, before `include $(RIOTBASE)/Makefile.include`:
#
#   TINYSPLIT_MODEL = $(CURDIR)/lenet5.onnx                          # required
#   TINYSPLIT_TARGET = stm32                                         # device profile (default host)
#   TINYSPLIT_OPTIONS = --quantize int8 --calibration $(CURDIR)/calibration.npz
#   include $(TINYSPLIT_ROOT)/integrations/riot/tinysplit.mk
#
# Optional: TINYSPLIT_PREFIX (C symbol prefix, default model; the module is tinysplit_$(TINYSPLIT_PREFIX)),
# TINYSPLIT_OUT (output folder, default $(CURDIR)/bin/tinysplit), TINYSPLIT (the executable, default tinysplit).
#
# The application then uses the generated model and tinysplit's C runtime as RIOT external modules.
# They are generated before anything is built (make remakes the dependency file included below, then
# restarts), and again whenever the model, the calibration data, the target profile or the command
# line changes. Needs GNU make 4.2 or newer.

ifeq (,$(TINYSPLIT_MODEL))
  $(error tinysplit.mk: set TINYSPLIT_MODEL to the ONNX model before including this file)
endif
TINYSPLIT ?= tinysplit
TINYSPLIT_TARGET ?= host
TINYSPLIT_PREFIX ?= model
TINYSPLIT_OUT ?= $(CURDIR)/bin/tinysplit
override TINYSPLIT_OUT := $(abspath $(TINYSPLIT_OUT))
_TINYSPLIT_DEFAULT_GOAL := $(.DEFAULT_GOAL)

_TINYSPLIT_ARGS := $(strip compile $(abspath $(TINYSPLIT_MODEL)) -o $(TINYSPLIT_OUT) \
  --target $(TINYSPLIT_TARGET) --prefix $(TINYSPLIT_PREFIX) $(TINYSPLIT_OPTIONS))
_TINYSPLIT_ARGS_FILE := $(TINYSPLIT_OUT).args
_TINYSPLIT_DEPS := $(TINYSPLIT_OUT).d

# The command line, kept in a file that is rewritten only when it changes: new options regenerate.
ifneq ($(strip $(file <$(_TINYSPLIT_ARGS_FILE))),$(_TINYSPLIT_ARGS))
  $(shell mkdir -p $(dir $(_TINYSPLIT_ARGS_FILE)))
  $(file >$(_TINYSPLIT_ARGS_FILE),$(_TINYSPLIT_ARGS))
endif

# tinysplit's dependency file names the generated files as its targets; this rule puts the dependency
# file itself in their place (first line), so that it depends on every input the compiler lists
# (model, calibration data, target profile). It is written on every run, unlike unchanged outputs.
$(_TINYSPLIT_DEPS): $(abspath $(TINYSPLIT_MODEL)) $(_TINYSPLIT_ARGS_FILE)
	$(TINYSPLIT) $(_TINYSPLIT_ARGS) --emit-deps $@.tmp
	{ printf '%s: \\\n' '$@'; tail -n +2 $@.tmp; } > $@ && rm -f $@.tmp

ifneq (,$(filter-out clean distclean,$(or $(MAKECMDGOALS),all)))
  include $(_TINYSPLIT_DEPS)
endif

EXTERNAL_MODULE_DIRS += $(TINYSPLIT_OUT)/c/riot
USEMODULE += tinysplit_$(TINYSPLIT_PREFIX)

# The rules above must not become the application's default goal.
.DEFAULT_GOAL := $(_TINYSPLIT_DEFAULT_GOAL)
