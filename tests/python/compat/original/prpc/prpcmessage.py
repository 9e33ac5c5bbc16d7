"""The original PRPC's message as its code builds it (docs: shared/docs/ORIGINAL.md, section 3):
pydantic checks the four caller fields, attributes are set in its constructor's order, and
jsonpickle (3.3, default settings) writes and reads it, with no allow-list."""

import datetime
import json
import uuid
from typing import Any

import pydantic

import jsonpickle


class _Fields(pydantic.BaseModel):
    func_name: str
    func_args: list | tuple = []
    func_kwargs: dict = {}
    message_id: uuid.UUID


class PRPCMessage:
    def __init__(self, func_name, func_args, func_kwargs, message_id=None):
        func_args = [] if func_args is None else func_args
        func_kwargs = {} if func_kwargs is None else func_kwargs
        message_id = uuid.uuid4() if message_id is None else message_id
        _Fields(func_name=func_name, func_args=func_args, func_kwargs=func_kwargs,
                message_id=message_id)
        self.func_name = func_name
        self.func_args = func_args
        self.func_kwargs = func_kwargs
        self.message_id = message_id
        self.date_create_message = datetime.datetime.now(datetime.timezone.utc)
        self.result: Any = None
        self.exception_info = None
        self.date_done_message = None

    def message_to_done(self, exception_info=None, result=None):
        # The original asserted one of them was set (its None-result bug is not reproduced:
        # the stand-in server needs to answer functions returning None).
        self.result = result
        self.exception_info = exception_info
        self.date_done_message = datetime.datetime.now(datetime.timezone.utc)

    def is_message_done(self):
        return self.date_done_message is not None

    def serialize(self, serialize_raw=False):
        if serialize_raw:
            return jsonpickle.dumps(self, False)
        return jsonpickle.dumps(self)

    @classmethod
    def deserialize(cls, text):
        message = jsonpickle.loads(text)
        if not isinstance(message, PRPCMessage):
            raise ValueError(f"not a PRPCMessage: {text!r}")
        return message

    @classmethod
    def deserialize_raw(cls, text):
        fields = _Fields(**json.loads(text))
        return PRPCMessage(fields.func_name, fields.func_args, fields.func_kwargs,
                           fields.message_id)
