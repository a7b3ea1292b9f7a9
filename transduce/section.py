"""The base of every config section: an unknown key is an error, and so is a value of the wrong
kind (integer and boolean keys take integers and booleans only: "32" or true for an integer is a
mistake)."""
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt

Int, Bool = StrictInt, StrictBool


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
