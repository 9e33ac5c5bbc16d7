"""A stand-in for prpc.prpcmessage.PRPCMessage until the SDK package provides it.

The shape is the contract: a plain class whose __init__ sets the eight fields in the original
PRPC's order, and the extension attributes only when they have a value.
"""
import datetime
import importlib
import sys
import types
import uuid

EXTENSIONS = ("reply_to", "deadline", "attempt", "exception_type", "traceback", "traceparent")


def _define():
    class PRPCMessage:
        def __init__(self, func_name, func_args=None, func_kwargs=None, message_id=None,
                     result=None, exception_info=None, date_create_message=None,
                     date_done_message=None):
            self.func_name = func_name
            self.func_args = func_args if func_args is not None else []
            self.func_kwargs = func_kwargs if func_kwargs is not None else {}
            self.message_id = uuid.uuid4() if message_id is None else message_id
            self.date_create_message = (datetime.datetime.now(datetime.timezone.utc)
                                        if date_create_message is None else date_create_message)
            self.result = result
            self.exception_info = exception_info
            self.date_done_message = date_done_message

    PRPCMessage.__module__ = "prpc.prpcmessage"
    PRPCMessage.__qualname__ = "PRPCMessage"
    return PRPCMessage


def make(cls, *fields, **extensions):
    """A message with extension attributes set after the eight, only when they have a value."""
    msg = cls(*fields)
    for name in EXTENSIONS:
        value = extensions.pop(name, None)
        if value:
            setattr(msg, name, value)
    if extensions:
        raise TypeError(f"unknown fields: {sorted(extensions)}")
    return msg


def install():
    """Returns prpc.prpcmessage.PRPCMessage, defining the module when the SDK does not."""
    try:
        return importlib.import_module("prpc.prpcmessage").PRPCMessage
    except ImportError:
        pass
    package = sys.modules.get("prpc") or types.ModuleType("prpc")
    package.__path__ = getattr(package, "__path__", [])
    module = types.ModuleType("prpc.prpcmessage")
    module.PRPCMessage = _define()
    package.prpcmessage = module
    sys.modules.setdefault("prpc", package)
    sys.modules["prpc.prpcmessage"] = module
    return module.PRPCMessage
